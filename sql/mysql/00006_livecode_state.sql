-- livecode: facts that lived in Redis or in read-then-write code move into
-- tables with the keys that make them unique.

-- +goose Up
-- version: an edit based on an older version is refused (409).
-- reconcile_*: when the code's WeCom side must next be brought in line (an
-- input changed: now; otherwise its next schedule edge or the hourly drift
-- check), and the claim of whoever is doing it. reconcile_seq counts
-- triggers, so one arriving during a run makes the code due again.
-- skip_applied: the skip-verify value last applied to a rotating code's ways.
ALTER TABLE live_codes
  ADD COLUMN version          INT          NOT NULL DEFAULT 1,
  ADD COLUMN reconcile_at     BIGINT       NULL,
  ADD COLUMN reconcile_seq    BIGINT       NOT NULL DEFAULT 0,
  ADD COLUMN reconcile_token  VARCHAR(64)  NOT NULL DEFAULT '',
  ADD COLUMN reconcile_lease  BIGINT       NOT NULL DEFAULT 0,
  ADD COLUMN drift_at         BIGINT       NOT NULL DEFAULT 0,
  ADD COLUMN skip_applied     VARCHAR(8)   NOT NULL DEFAULT '',
  ADD KEY live_codes_reconcile (reconcile_at);
UPDATE live_codes SET reconcile_at = 0 WHERE status <> 'archived';

-- One row per (contact, staff member): the relation's current add and, once
-- lost, when and by whom. A loss that arrives before its add is kept as a
-- tombstone (source_id 0) and applied when the add arrives.
CREATE TABLE contact_relations (
  corp_id          VARCHAR(64)  NOT NULL,
  external_userid  VARCHAR(64)  NOT NULL,
  userid           VARCHAR(64)  NOT NULL,
  source_id        BIGINT       NOT NULL DEFAULT 0,
  added_at         BIGINT       NOT NULL DEFAULT 0,
  lost_at          BIGINT       NULL,
  lost_by          VARCHAR(16)  NOT NULL DEFAULT '',
  PRIMARY KEY (corp_id, external_userid, userid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO contact_relations (corp_id, external_userid, userid, source_id, added_at, lost_at, lost_by)
  SELECT s.corp_id, s.external_userid, s.userid, s.id, s.added_at, s.lost_at, s.lost_by FROM contact_sources s
  WHERE s.id = (SELECT MAX(s2.id) FROM contact_sources s2 WHERE s2.corp_id = s.corp_id AND s2.external_userid = s.external_userid AND s2.userid = s.userid);
ALTER TABLE contact_sources ADD KEY contact_sources_day (corp_id, day, userid, code_id);

-- Which group codes list a customer group (kept on every save): a group
-- event finds its codes with one lookup.
CREATE TABLE live_code_groups (
  corp_id   VARCHAR(64)  NOT NULL,
  chat_id   VARCHAR(64)  NOT NULL,
  code_id   BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, chat_id, code_id),
  KEY live_code_groups_code (code_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Effects applied once (a group join counted, an alert sent), written in
-- the same transaction as the effect they guard.
CREATE TABLE livecode_effects (
  corp_id     VARCHAR(64)  NOT NULL,
  effect_key  CHAR(64)     NOT NULL,
  created_at  BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, effect_key),
  KEY livecode_effects_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A leaver's customers are handed over once.
CREATE TABLE livecode_handovers (
  corp_id     VARCHAR(64)  NOT NULL,
  userid      VARCHAR(64)  NOT NULL,
  takeover    VARCHAR(64)  NOT NULL,
  started_at  BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, userid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Landing-page visitors per code and local day, so a visit counts once a
-- day even across restarts.
CREATE TABLE live_code_visitors (
  corp_id   VARCHAR(64)  NOT NULL,
  code_id   BIGINT       NOT NULL,
  day       CHAR(10)     NOT NULL,
  visitor   CHAR(32)     NOT NULL,
  PRIMARY KEY (corp_id, code_id, day, visitor),
  KEY live_code_visitors_day (day)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

ALTER TABLE stores ADD KEY stores_code (corp_id, code_id);

-- +goose Down
ALTER TABLE stores DROP KEY stores_code;
DROP TABLE live_code_visitors;
DROP TABLE livecode_handovers;
DROP TABLE livecode_effects;
DROP TABLE live_code_groups;
ALTER TABLE contact_sources DROP KEY contact_sources_day;
DROP TABLE contact_relations;
ALTER TABLE live_codes DROP KEY live_codes_reconcile, DROP COLUMN version, DROP COLUMN reconcile_at, DROP COLUMN reconcile_seq,
  DROP COLUMN reconcile_token, DROP COLUMN reconcile_lease, DROP COLUMN drift_at, DROP COLUMN skip_applied;
