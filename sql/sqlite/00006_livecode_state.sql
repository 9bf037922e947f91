-- livecode: durable state (see the MySQL migration for the why).

-- +goose Up
ALTER TABLE live_codes ADD COLUMN version INT NOT NULL DEFAULT 1;
ALTER TABLE live_codes ADD COLUMN reconcile_at BIGINT NULL;
ALTER TABLE live_codes ADD COLUMN reconcile_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE live_codes ADD COLUMN reconcile_token VARCHAR(64) NOT NULL DEFAULT '';
ALTER TABLE live_codes ADD COLUMN reconcile_lease BIGINT NOT NULL DEFAULT 0;
ALTER TABLE live_codes ADD COLUMN drift_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE live_codes ADD COLUMN skip_applied VARCHAR(8) NOT NULL DEFAULT '';
CREATE INDEX live_codes_reconcile ON live_codes (reconcile_at);
UPDATE live_codes SET reconcile_at = 0 WHERE status <> 'archived';

CREATE TABLE contact_relations (
  corp_id          VARCHAR(64)  NOT NULL,
  external_userid  VARCHAR(64)  NOT NULL,
  userid           VARCHAR(64)  NOT NULL,
  source_id        BIGINT       NOT NULL DEFAULT 0,
  added_at         BIGINT       NOT NULL DEFAULT 0,
  lost_at          BIGINT       NULL,
  lost_by          VARCHAR(16)  NOT NULL DEFAULT '',
  PRIMARY KEY (corp_id, external_userid, userid)
);
INSERT INTO contact_relations (corp_id, external_userid, userid, source_id, added_at, lost_at, lost_by)
  SELECT s.corp_id, s.external_userid, s.userid, s.id, s.added_at, s.lost_at, s.lost_by FROM contact_sources s
  WHERE s.id = (SELECT MAX(s2.id) FROM contact_sources s2 WHERE s2.corp_id = s.corp_id AND s2.external_userid = s.external_userid AND s2.userid = s.userid);
CREATE INDEX contact_sources_day ON contact_sources (corp_id, day, userid, code_id);

CREATE TABLE live_code_groups (
  corp_id   VARCHAR(64)  NOT NULL,
  chat_id   VARCHAR(64)  NOT NULL,
  code_id   BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, chat_id, code_id)
);
CREATE INDEX live_code_groups_code ON live_code_groups (code_id);

CREATE TABLE livecode_effects (
  corp_id     VARCHAR(64)  NOT NULL,
  effect_key  CHAR(64)     NOT NULL,
  created_at  BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, effect_key)
);
CREATE INDEX livecode_effects_created ON livecode_effects (created_at);

CREATE TABLE livecode_handovers (
  corp_id     VARCHAR(64)  NOT NULL,
  userid      VARCHAR(64)  NOT NULL,
  takeover    VARCHAR(64)  NOT NULL,
  started_at  BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, userid)
);

CREATE TABLE live_code_visitors (
  corp_id   VARCHAR(64)  NOT NULL,
  code_id   BIGINT       NOT NULL,
  day       CHAR(10)     NOT NULL,
  visitor   CHAR(32)     NOT NULL,
  PRIMARY KEY (corp_id, code_id, day, visitor)
);
CREATE INDEX live_code_visitors_day ON live_code_visitors (day);

CREATE INDEX stores_code ON stores (corp_id, code_id);

-- +goose Down
DROP INDEX stores_code;
DROP TABLE live_code_visitors;
DROP TABLE livecode_handovers;
DROP TABLE livecode_effects;
DROP TABLE live_code_groups;
DROP INDEX contact_sources_day;
DROP TABLE contact_relations;
DROP INDEX live_codes_reconcile;
ALTER TABLE live_codes DROP COLUMN version;
ALTER TABLE live_codes DROP COLUMN reconcile_at;
ALTER TABLE live_codes DROP COLUMN reconcile_seq;
ALTER TABLE live_codes DROP COLUMN reconcile_token;
ALTER TABLE live_codes DROP COLUMN reconcile_lease;
ALTER TABLE live_codes DROP COLUMN drift_at;
ALTER TABLE live_codes DROP COLUMN skip_applied;
