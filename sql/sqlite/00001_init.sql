-- Qiflow schema, SQLite (same tables as sql/mysql). SQLite compares TEXT
-- case-sensitively (BINARY) by default, as WeCom ids need; emails are stored lower-cased. Times are Unix
-- milliseconds (UTC) in BIGINT columns, computed in Go.

-- +goose Up
CREATE TABLE corps (
  id          VARCHAR(64)  NOT NULL PRIMARY KEY,
  name        VARCHAR(255) NOT NULL DEFAULT '',
  time_zone   VARCHAR(64)  NOT NULL DEFAULT 'Asia/Shanghai',
  created_at  BIGINT       NOT NULL,
  updated_at  BIGINT       NOT NULL
);

-- wecom/directory: the mirror of WeCom's directory.
CREATE TABLE departments (
  corp_id     VARCHAR(64)  NOT NULL,
  id          BIGINT       NOT NULL,
  name        VARCHAR(255) NOT NULL DEFAULT '',
  parent_id   BIGINT       NOT NULL DEFAULT 0,
  sort_order  BIGINT       NOT NULL DEFAULT 0,
  gone_at     BIGINT       NULL,
  synced_at   BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, id)
);

CREATE TABLE staff (
  corp_id         VARCHAR(64)  NOT NULL,
  userid          VARCHAR(64)  NOT NULL,
  name            VARCHAR(255) NOT NULL DEFAULT '',
  mobile          VARCHAR(32)  NOT NULL DEFAULT '',
  email           VARCHAR(255) NOT NULL DEFAULT '',
  status          INT          NOT NULL DEFAULT 1,
  department_ids  VARCHAR(1024) NOT NULL DEFAULT '[]',
  main_department BIGINT       NOT NULL DEFAULT 0,
  gone_at         BIGINT       NULL,
  synced_at       BIGINT       NOT NULL,
  created_at      BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, userid)
);

CREATE TABLE tag_groups (
  corp_id     VARCHAR(64)  NOT NULL,
  id          VARCHAR(64)  NOT NULL,
  name        VARCHAR(255) NOT NULL DEFAULT '',
  sort_order  BIGINT       NOT NULL DEFAULT 0,
  deleted_at  BIGINT       NULL,
  updated_at  BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, id)
);

CREATE TABLE tags (
  corp_id     VARCHAR(64)  NOT NULL,
  id          VARCHAR(64)  NOT NULL,
  group_id    VARCHAR(64)  NOT NULL,
  name        VARCHAR(255) NOT NULL DEFAULT '',
  sort_order  BIGINT       NOT NULL DEFAULT 0,
  deleted_at  BIGINT       NULL,
  updated_at  BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, id)
);
CREATE INDEX tags_group ON tags (corp_id, group_id);

CREATE TABLE external_contacts (
  corp_id         VARCHAR(64)  NOT NULL,
  external_userid VARCHAR(64)  NOT NULL,
  name            VARCHAR(255) NOT NULL DEFAULT '',
  type            INT          NOT NULL DEFAULT 0,
  gender          INT          NOT NULL DEFAULT 0,
  unionid         VARCHAR(64)  NOT NULL DEFAULT '',
  avatar          VARCHAR(1024) NOT NULL DEFAULT '',
  corp_name       VARCHAR(255) NOT NULL DEFAULT '',
  created_at      BIGINT       NOT NULL,
  updated_at      BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, external_userid)
);
CREATE INDEX external_contacts_unionid ON external_contacts (corp_id, unionid);

-- One row per (customer, staff member). Losses are recorded, not erased:
-- deleted_at with deleted_by customer | staff | transfer.
CREATE TABLE follow_relations (
  corp_id         VARCHAR(64)  NOT NULL,
  external_userid VARCHAR(64)  NOT NULL,
  userid          VARCHAR(64)  NOT NULL,
  remark          VARCHAR(255) NOT NULL DEFAULT '',
  description     VARCHAR(1024) NOT NULL DEFAULT '',
  remark_mobiles  VARCHAR(1024) NOT NULL DEFAULT '[]',
  tag_ids         TEXT         NOT NULL,
  state           VARCHAR(64)  NOT NULL DEFAULT '',
  add_way         INT          NOT NULL DEFAULT 0,
  oper_userid     VARCHAR(64)  NOT NULL DEFAULT '',
  added_at        BIGINT       NOT NULL,
  deleted_at      BIGINT       NULL,
  deleted_by      VARCHAR(16)  NOT NULL DEFAULT '',
  transfer_fail   VARCHAR(64)  NOT NULL DEFAULT '',
  updated_at      BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, external_userid, userid)
);
CREATE INDEX follow_relations_staff ON follow_relations (corp_id, userid, deleted_at);

CREATE TABLE group_chats (
  corp_id       VARCHAR(64)  NOT NULL,
  chat_id       VARCHAR(64)  NOT NULL,
  name          VARCHAR(255) NOT NULL DEFAULT '',
  owner         VARCHAR(64)  NOT NULL DEFAULT '',
  notice        TEXT         NOT NULL,
  member_count  INT          NOT NULL DEFAULT 0,
  member_version VARCHAR(64) NOT NULL DEFAULT '',
  created_at    BIGINT       NOT NULL,
  dismissed_at  BIGINT       NULL,
  updated_at    BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, chat_id)
);

-- jobs: the inbox. One row per distinct WeCom event (dedup_key is the SHA-256
-- of what identifies it), one delivery per interested subscriber. A delivery
-- is the unit of work: claimed under a lease, retried, dead-lettered.
CREATE TABLE inbox_events (
  id           INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id      VARCHAR(64)  NOT NULL,
  dedup_key    CHAR(64)     NOT NULL,
  event        VARCHAR(64)  NOT NULL,
  change_type  VARCHAR(64)  NOT NULL DEFAULT '',
  payload      TEXT   NOT NULL,
  event_time   BIGINT       NOT NULL,
  received_at  BIGINT       NOT NULL
);
CREATE UNIQUE INDEX inbox_events_dedup ON inbox_events (dedup_key, corp_id);
CREATE INDEX inbox_events_received ON inbox_events (received_at);

-- status: queued (claimable once available_at has passed; while leased,
-- available_at is the lease's end and lease_owner names the instance) |
-- done | dead (kept until replayed or dismissed) | dismissed.
CREATE TABLE inbox_deliveries (
  id            INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  event_id      BIGINT       NOT NULL,
  corp_id       VARCHAR(64)  NOT NULL,
  subscriber    VARCHAR(64)  NOT NULL,
  lane          TINYINT      NOT NULL DEFAULT 0,
  status        VARCHAR(16)  NOT NULL,
  attempts      INT          NOT NULL DEFAULT 0,
  available_at  BIGINT       NOT NULL,
  lease_owner   VARCHAR(64)  NOT NULL DEFAULT '',
  last_error    TEXT         NULL,
  created_at    BIGINT       NOT NULL,
  updated_at    BIGINT       NOT NULL,
  done_at       BIGINT       NULL
);
CREATE UNIQUE INDEX inbox_deliveries_event_sub ON inbox_deliveries (event_id, subscriber);
CREATE INDEX inbox_deliveries_claim ON inbox_deliveries (lane, status, available_at);

-- jobs: background jobs (imports, syncs, rebuilds), resumable from checkpoint.
-- status: queued | running | done | failed | cancelled.
CREATE TABLE jobs (
  id               INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  kind             VARCHAR(64)  NOT NULL,
  unique_key       VARCHAR(191) NULL,
  status           VARCHAR(16)  NOT NULL,
  params           TEXT         NOT NULL,
  checkpoint       TEXT   NOT NULL,
  progress_done    BIGINT       NOT NULL DEFAULT 0,
  progress_total   BIGINT       NOT NULL DEFAULT 0,
  result           TEXT   NOT NULL,
  error            TEXT         NULL,
  attempts         INT          NOT NULL DEFAULT 0,
  max_attempts     INT          NOT NULL DEFAULT 5,
  available_at     BIGINT       NOT NULL,
  lease_owner      VARCHAR(64)  NOT NULL DEFAULT '',
  cancel_requested TINYINT      NOT NULL DEFAULT 0,
  created_by       BIGINT       NOT NULL DEFAULT 0,
  created_at       BIGINT       NOT NULL,
  updated_at       BIGINT       NOT NULL,
  started_at       BIGINT       NULL,
  finished_at      BIGINT       NULL
);
CREATE UNIQUE INDEX jobs_unique ON jobs (unique_key);
CREATE INDEX jobs_claim ON jobs (status, available_at);
CREATE INDEX jobs_corp ON jobs (corp_id, kind, id);

-- auth: users, their corps and roles, teams, tokens, per-corp permissions.
CREATE TABLE users (
  id             INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  email          VARCHAR(191) NOT NULL,
  name           VARCHAR(255) NOT NULL DEFAULT '',
  password_hash  VARCHAR(255) NOT NULL,
  disabled       TINYINT      NOT NULL DEFAULT 0,
  created_at     BIGINT       NOT NULL,
  updated_at     BIGINT       NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (email);

CREATE TABLE user_corps (
  user_id       BIGINT       NOT NULL,
  corp_id       VARCHAR(64)  NOT NULL,
  role          VARCHAR(16)  NOT NULL,
  is_default    TINYINT      NOT NULL DEFAULT 0,
  staff_userid  VARCHAR(64)  NOT NULL DEFAULT '',
  created_at    BIGINT       NOT NULL,
  PRIMARY KEY (user_id, corp_id)
);
CREATE INDEX user_corps_corp ON user_corps (corp_id, role);

CREATE TABLE teams (
  id               INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  name             VARCHAR(255) NOT NULL,
  manager_user_id  BIGINT       NOT NULL DEFAULT 0,
  created_at       BIGINT       NOT NULL
);
CREATE UNIQUE INDEX teams_name ON teams (corp_id, name);

CREATE TABLE team_members (
  team_id  BIGINT NOT NULL,
  user_id  BIGINT NOT NULL,
  PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id);

-- kind: session (login) | api (integration). Only the SHA-256 of a token is stored.
CREATE TABLE auth_tokens (
  id            INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  user_id       BIGINT       NOT NULL,
  kind          VARCHAR(16)  NOT NULL,
  name          VARCHAR(255) NOT NULL DEFAULT '',
  token_hash    CHAR(64)     NOT NULL,
  expires_at    BIGINT       NULL,
  last_used_at  BIGINT       NULL,
  revoked_at    BIGINT       NULL,
  created_at    BIGINT       NOT NULL
);
CREATE UNIQUE INDEX auth_tokens_hash ON auth_tokens (token_hash);
CREATE INDEX auth_tokens_user ON auth_tokens (user_id);

-- Per-corp overrides of the built-in role permissions.
CREATE TABLE role_permissions (
  corp_id     VARCHAR(64) NOT NULL,
  role        VARCHAR(16) NOT NULL,
  permission  VARCHAR(64) NOT NULL,
  allowed     TINYINT     NOT NULL,
  PRIMARY KEY (corp_id, role, permission)
);

-- +goose Down
DROP TABLE role_permissions;
DROP TABLE auth_tokens;
DROP TABLE team_members;
DROP TABLE teams;
DROP TABLE user_corps;
DROP TABLE users;
DROP TABLE jobs;
DROP TABLE inbox_deliveries;
DROP TABLE inbox_events;
DROP TABLE group_chats;
DROP TABLE follow_relations;
DROP TABLE external_contacts;
DROP TABLE tags;
DROP TABLE tag_groups;
DROP TABLE staff;
DROP TABLE departments;
DROP TABLE corps;
