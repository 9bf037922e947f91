-- leads: SLAs (the owner of a new MQL logs a first touch, a sales rep
-- answers a handoff, within the working hours of the first matching rule;
-- a notice at half time, the manager too at breach) and the escalation
-- ladder of a pool (notices after working days without a follow-up,
-- before the lead returns to the pool).

-- +goose Up
CREATE TABLE sla_rules (
  id               INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  position         INT          NOT NULL,
  name             VARCHAR(64)  NOT NULL,
  cond             TEXT         NOT NULL,
  hours            INT          NOT NULL,
  created_at       BIGINT       NOT NULL,
  updated_at       BIGINT       NOT NULL
);
CREATE INDEX sla_rules_corp ON sla_rules (corp_id, position);

CREATE TABLE lead_slas (
  id               INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  lead_id          BIGINT       NOT NULL,
  kind             VARCHAR(16)  NOT NULL,
  owner_user_id    BIGINT       NOT NULL,
  rule_id          BIGINT       NOT NULL,
  status           VARCHAR(16)  NOT NULL,
  started_at       BIGINT       NOT NULL,
  half_at          BIGINT       NOT NULL,
  due_at           BIGINT       NOT NULL,
  half_sent        INT          NOT NULL DEFAULT 0,
  ended_at         BIGINT       NULL
);
CREATE INDEX lead_slas_half ON lead_slas (status, half_sent, half_at);
CREATE INDEX lead_slas_due ON lead_slas (status, due_at);
CREATE INDEX lead_slas_lead ON lead_slas (lead_id, status);
CREATE INDEX lead_slas_report ON lead_slas (corp_id, started_at);

-- [{"after_days": 3, "notify": "owner"}, {"after_days": 5, "notify": "manager"}]
ALTER TABLE lead_pools ADD COLUMN escalations VARCHAR(1000) NOT NULL DEFAULT '[]';

-- The ladder's steps sent, per follow-up (a new touch starts the ladder again).
CREATE TABLE lead_escalations (
  lead_id          BIGINT       NOT NULL,
  step             INT          NOT NULL,
  touch_at         BIGINT       NOT NULL,
  sent_at          BIGINT       NOT NULL,
  PRIMARY KEY (lead_id, step, touch_at)
);

-- +goose Down
DROP TABLE lead_escalations;
ALTER TABLE lead_pools DROP COLUMN escalations;
DROP TABLE lead_slas;
DROP TABLE sla_rules;
