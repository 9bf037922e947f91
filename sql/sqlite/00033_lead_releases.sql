-- Who released a lead, and when, apart from the history and its index (see
-- the MySQL migration of the same number).

-- +goose Up
CREATE TABLE lead_releases (
  corp_id          VARCHAR(64)  NOT NULL,
  lead_id          BIGINT       NOT NULL,
  user_id          BIGINT       NOT NULL,
  at               BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, lead_id, user_id)
);
INSERT INTO lead_releases (corp_id, lead_id, user_id, at)
  SELECT corp_id, lead_id, actor_user_id, MAX(at) FROM lead_history
  WHERE kind = 'released' GROUP BY corp_id, lead_id, actor_user_id;
DROP INDEX lead_history_release;

-- +goose Down
CREATE INDEX lead_history_release ON lead_history (corp_id, actor_user_id, kind, lead_id);
DROP TABLE lead_releases;
