-- leads: people and their identities, pools, leads with their owner and
-- stage, every change in the history, and each SDR's claim counters (the
-- caps are checked by a conditional update of that row in the claim's
-- transaction, so two claims never both take the last slot).

-- +goose Up
CREATE TABLE people (
  id               INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  name             VARCHAR(255) NOT NULL DEFAULT '',
  -- the identity the person was made from (wecom:<external_userid>), so a
  -- batch that creates people reads their ids back; NULL when made by hand
  origin           VARCHAR(191) NULL,
  created_at       BIGINT       NOT NULL,
  updated_at       BIGINT       NOT NULL
);

CREATE UNIQUE INDEX people_origin ON people (corp_id, origin);

-- An identity names one person: a WeCom external contact (per corp), a
-- unionid, a normalised mobile or a lowercased email.
CREATE TABLE person_identities (
  corp_id          VARCHAR(64)  NOT NULL,
  kind             VARCHAR(16)  NOT NULL,
  value            VARCHAR(191) NOT NULL,
  person_id        BIGINT       NOT NULL,
  created_at       BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, kind, value)
);
CREATE INDEX person_identities_person ON person_identities (person_id);

CREATE TABLE lead_pools (
  id               INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  name             VARCHAR(64)  NOT NULL,
  is_default       INT          NOT NULL DEFAULT 0,
  max_open         INT          NOT NULL DEFAULT 0,
  max_claims_day   INT          NOT NULL DEFAULT 0,
  cooldown_hours   INT          NOT NULL DEFAULT 0,
  recycle_days     INT          NOT NULL DEFAULT 0,
  created_at       BIGINT       NOT NULL,
  updated_at       BIGINT       NOT NULL
);
CREATE UNIQUE INDEX lead_pools_name ON lead_pools (corp_id, name);

-- Who works a pool: a pool with members is theirs; one without is open to
-- every SDR of the corp (the default pool, unless members are added).
CREATE TABLE lead_pool_members (
  corp_id          VARCHAR(64)  NOT NULL,
  pool_id          BIGINT       NOT NULL,
  user_id          BIGINT       NOT NULL,
  created_at       BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, pool_id, user_id)
);

CREATE TABLE leads (
  id               INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  person_id        BIGINT       NOT NULL,
  pool_id          BIGINT       NOT NULL,
  owner_user_id    BIGINT       NOT NULL DEFAULT 0,
  stage            VARCHAR(16)  NOT NULL,
  source           VARCHAR(16)  NOT NULL,
  channel          VARCHAR(64)  NOT NULL DEFAULT '',
  code_id          BIGINT       NOT NULL DEFAULT 0,
  staff_userid     VARCHAR(64)  NOT NULL DEFAULT '',
  claimed_at       BIGINT       NULL,
  last_touch_at    BIGINT       NULL,
  -- engagement in thousandths of a point, as of engagement_at; read with
  -- the corp's half-life applied since then
  engagement_milli BIGINT       NOT NULL DEFAULT 0,
  engagement_at    BIGINT       NOT NULL DEFAULT 0,
  version          BIGINT       NOT NULL DEFAULT 1,
  created_at       BIGINT       NOT NULL,
  updated_at       BIGINT       NOT NULL
);
CREATE UNIQUE INDEX leads_person ON leads (corp_id, person_id);
CREATE INDEX leads_pool ON leads (corp_id, pool_id, owner_user_id, stage);
CREATE INDEX leads_owner ON leads (corp_id, owner_user_id, stage);
CREATE INDEX leads_touch ON leads (pool_id, last_touch_at);

CREATE TABLE lead_history (
  id               INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  lead_id          BIGINT       NOT NULL,
  at               BIGINT       NOT NULL,
  actor_user_id    BIGINT       NOT NULL DEFAULT 0,
  kind             VARCHAR(16)  NOT NULL,
  from_value       VARCHAR(64)  NOT NULL DEFAULT '',
  to_value         VARCHAR(64)  NOT NULL DEFAULT '',
  reason           VARCHAR(500) NOT NULL DEFAULT '',
  -- the event that made the change (add:<source id>), so a retried
  -- delivery records it once; NULL for changes people make
  event_key        VARCHAR(64)  NULL
);
CREATE INDEX lead_history_lead ON lead_history (lead_id, id);
CREATE UNIQUE INDEX lead_history_event ON lead_history (corp_id, event_key);
CREATE INDEX lead_history_release ON lead_history (corp_id, actor_user_id, kind, lead_id);

-- Each SDR's counters per pool: open leads held, and claims on claims_day.
CREATE TABLE lead_claim_counters (
  corp_id          VARCHAR(64)  NOT NULL,
  pool_id          BIGINT       NOT NULL,
  user_id          BIGINT       NOT NULL,
  open_leads       INT          NOT NULL DEFAULT 0,
  claims_day       CHAR(10)     NOT NULL DEFAULT '',
  claims_today     INT          NOT NULL DEFAULT 0,
  PRIMARY KEY (corp_id, pool_id, user_id)
);

-- Behaviour from other systems (product usage, webinars, orders) and
-- Qiflow's own, per person; key makes a resent activity a duplicate.
CREATE TABLE activities (
  id               INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  person_id        BIGINT       NOT NULL,
  type             VARCHAR(64)  NOT NULL,
  at               BIGINT       NOT NULL,
  properties       TEXT         NOT NULL,
  idem_key         VARCHAR(128) NULL,
  -- the call that stored it: a call reads back exactly what it inserted
  batch            VARCHAR(24)  NOT NULL DEFAULT '',
  created_at       BIGINT       NOT NULL
);
CREATE UNIQUE INDEX activities_key ON activities (corp_id, idem_key);
CREATE INDEX activities_person ON activities (person_id, at);
CREATE INDEX activities_batch ON activities (batch);

-- Engagement rules: points for an activity type, when its condition holds
-- (an expression over the activity), capped per lead, once or repeatable.
CREATE TABLE scoring_rules (
  id               INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  name             VARCHAR(64)  NOT NULL,
  activity_type    VARCHAR(64)  NOT NULL,
  cond             TEXT         NOT NULL,
  points           INT          NOT NULL,
  max_points       INT          NOT NULL DEFAULT 0,
  repeatable       INT          NOT NULL DEFAULT 1,
  created_at       BIGINT       NOT NULL,
  updated_at       BIGINT       NOT NULL
);
CREATE INDEX scoring_rules_type ON scoring_rules (corp_id, activity_type);

-- What each rule has given each lead (for caps and once-only rules).
CREATE TABLE lead_rule_points (
  lead_id          BIGINT       NOT NULL,
  rule_id          BIGINT       NOT NULL,
  points           INT          NOT NULL DEFAULT 0,
  times            INT          NOT NULL DEFAULT 0,
  PRIMARY KEY (lead_id, rule_id)
);

-- Who gets a new MQL: rules in order, each with a condition over the lead
-- and the users it rotates through (next_pick, taken under the row's lock).
CREATE TABLE assignment_rules (
  id               INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  position         INT          NOT NULL,
  name             VARCHAR(64)  NOT NULL,
  cond             TEXT         NOT NULL,
  users            TEXT         NOT NULL,
  next_pick        BIGINT       NOT NULL DEFAULT 0,
  created_at       BIGINT       NOT NULL,
  updated_at       BIGINT       NOT NULL
);
CREATE INDEX assignment_rules_corp ON assignment_rules (corp_id, position);

-- A corp's scoring settings.
CREATE TABLE lead_settings (
  corp_id          VARCHAR(64)  NOT NULL PRIMARY KEY,
  half_life_days   INT          NOT NULL DEFAULT 30,
  mql_threshold    INT          NOT NULL DEFAULT 50,
  updated_at       BIGINT       NOT NULL
);

-- +goose Down
DROP TABLE lead_settings;
DROP TABLE assignment_rules;
DROP TABLE lead_rule_points;
DROP TABLE scoring_rules;
DROP TABLE activities;
DROP TABLE lead_claim_counters;
DROP TABLE lead_pool_members;
DROP TABLE lead_history;
DROP TABLE leads;
DROP TABLE lead_pools;
DROP TABLE person_identities;
DROP TABLE people;
