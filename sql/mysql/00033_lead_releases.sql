-- Who released a lead, and when: a former owner may not claim it back
-- within the pool's cool-down. The claim found this in the history through
-- an index on (corp, actor, kind, lead) that every history entry paid for,
-- though only releases need it: a rescore of a million leads writes two
-- million entries, and the index was a sixteenth of its time. Releases are
-- rare; they now also write a row here.

-- +goose Up
CREATE TABLE lead_releases (
  corp_id          VARCHAR(64)  NOT NULL,
  lead_id          BIGINT       NOT NULL,
  user_id          BIGINT       NOT NULL,
  at               BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, lead_id, user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO lead_releases (corp_id, lead_id, user_id, at)
  SELECT corp_id, lead_id, actor_user_id, MAX(at) FROM lead_history
  WHERE kind = 'released' GROUP BY corp_id, lead_id, actor_user_id;
DROP INDEX lead_history_release ON lead_history;

-- +goose Down
CREATE INDEX lead_history_release ON lead_history (corp_id, actor_user_id, kind, lead_id);
DROP TABLE lead_releases;
