-- livecode: channel codes, their staff, where each contact came from, welcome
-- sends, per-day statistics, and the outbox of domain events (ContactAdded).

-- +goose Up
CREATE TABLE live_codes (
  id             INTEGER       NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id        VARCHAR(64)   NOT NULL,
  kind           VARCHAR(16)   NOT NULL,
  slug           VARCHAR(32)   NOT NULL,
  name           VARCHAR(255)  NOT NULL,
  channel        VARCHAR(128)  NOT NULL DEFAULT '',
  mode           VARCHAR(16)   NOT NULL,
  status         VARCHAR(16)   NOT NULL,
  settings       TEXT    NOT NULL,
  config_id      VARCHAR(64)   NOT NULL DEFAULT '',
  qr_code        VARCHAR(1024) NOT NULL DEFAULT '',
  wecom_users    TEXT          NOT NULL,
  owner_user_id  BIGINT        NOT NULL DEFAULT 0,
  created_at     BIGINT        NOT NULL,
  updated_at     BIGINT        NOT NULL
);
CREATE UNIQUE INDEX live_codes_slug ON live_codes (slug);
CREATE INDEX live_codes_corp ON live_codes (corp_id, status, id);

CREATE TABLE live_code_staff (
  code_id    BIGINT        NOT NULL,
  corp_id    VARCHAR(64)   NOT NULL,
  userid     VARCHAR(64)   NOT NULL,
  position   INT           NOT NULL DEFAULT 0,
  weight     INT           NOT NULL DEFAULT 1,
  daily_cap  INT           NOT NULL DEFAULT 0,
  is_backup  TINYINT       NOT NULL DEFAULT 0,
  state      VARCHAR(32)   NOT NULL DEFAULT '',
  config_id  VARCHAR(64)   NOT NULL DEFAULT '',
  qr_code    VARCHAR(1024) NOT NULL DEFAULT '',
  PRIMARY KEY (code_id, userid)
);
CREATE INDEX live_code_staff_user ON live_code_staff (corp_id, userid);

-- Every add, through a code or direct (code_id 0), once per add event.
CREATE TABLE contact_sources (
  id               INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  event_key        CHAR(64)     NOT NULL,
  external_userid  VARCHAR(64)  NOT NULL,
  userid           VARCHAR(64)  NOT NULL,
  code_id          BIGINT       NOT NULL DEFAULT 0,
  channel          VARCHAR(128) NOT NULL DEFAULT '',
  state            VARCHAR(64)  NOT NULL DEFAULT '',
  add_way          INT          NOT NULL DEFAULT 0,
  is_readd         TINYINT      NOT NULL DEFAULT 0,
  out_of_period    TINYINT      NOT NULL DEFAULT 0,
  day              CHAR(10)     NOT NULL,
  added_at         BIGINT       NOT NULL,
  lost_at          BIGINT       NULL,
  lost_by          VARCHAR(16)  NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX contact_sources_event ON contact_sources (corp_id, event_key);
CREATE INDEX contact_sources_pair ON contact_sources (corp_id, external_userid, userid, added_at);
CREATE INDEX contact_sources_code ON contact_sources (corp_id, code_id, added_at);

-- status: sending | sent | already (41051) | expired | failed | none (no code: greeted elsewhere)
CREATE TABLE welcome_sends (
  corp_id          VARCHAR(64)  NOT NULL,
  welcome_code     VARCHAR(128) NOT NULL,
  code_id          BIGINT       NOT NULL DEFAULT 0,
  external_userid  VARCHAR(64)  NOT NULL,
  userid           VARCHAR(64)  NOT NULL,
  status           VARCHAR(16)  NOT NULL,
  error            TEXT         NULL,
  created_at       BIGINT       NOT NULL,
  updated_at       BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, welcome_code)
);
CREATE INDEX welcome_sends_pair ON welcome_sends (corp_id, external_userid, userid, created_at);

-- Per code, staff member and local day. Conversions (MQL, SQL, won) join
-- through contact_sources.id later.
CREATE TABLE live_code_stats (
  corp_id          VARCHAR(64)  NOT NULL,
  code_id          BIGINT       NOT NULL,
  userid           VARCHAR(64)  NOT NULL,
  day              CHAR(10)     NOT NULL,
  visits           INT          NOT NULL DEFAULT 0,
  adds             INT          NOT NULL DEFAULT 0,
  readds           INT          NOT NULL DEFAULT 0,
  lost_customer    INT          NOT NULL DEFAULT 0,
  lost_staff       INT          NOT NULL DEFAULT 0,
  welcome_sent     INT          NOT NULL DEFAULT 0,
  welcome_missed   INT          NOT NULL DEFAULT 0,
  PRIMARY KEY (corp_id, code_id, userid, day)
);

-- Outbox of domain events for later subscribers (lead pool, journeys).
CREATE TABLE domain_events (
  id          INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id     VARCHAR(64)  NOT NULL,
  type        VARCHAR(64)  NOT NULL,
  dedup_key   CHAR(64)     NOT NULL,
  payload     TEXT         NOT NULL,
  created_at  BIGINT       NOT NULL
);
CREATE UNIQUE INDEX domain_events_dedup ON domain_events (corp_id, dedup_key);
CREATE INDEX domain_events_type ON domain_events (corp_id, type, id);

-- +goose Down
DROP TABLE domain_events;
DROP TABLE live_code_stats;
DROP TABLE welcome_sends;
DROP TABLE contact_sources;
DROP TABLE live_code_staff;
DROP TABLE live_codes;
