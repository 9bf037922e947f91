-- journey_date_entries: per journey entry on a lead's date field, the last
-- day whose leads were enrolled, and the day in progress with how far its
-- enrolment got (the lead id it reached), so a restarted job resumes where
-- it was and no day enrols twice.

-- +goose Up
CREATE TABLE journey_date_entries (
  journey_id       BIGINT       NOT NULL,
  node_id          VARCHAR(64)  NOT NULL,
  done_day         CHAR(10)     NOT NULL,
  day              CHAR(10)     NOT NULL,
  after_lead       BIGINT       NOT NULL DEFAULT 0,
  updated_at       BIGINT       NOT NULL,
  PRIMARY KEY (journey_id, node_id)
);

-- +goose Down
DROP TABLE journey_date_entries;
