-- leads: the handoff of SQLs to sales (a rule of kind handoff picks the
-- rep, who accepts or rejects with a reason), and the notices Qiflow sends
-- staff as WeCom app messages: written in the transaction of what they
-- announce, sent by a sender that claims them (a token, as the bus does)
-- and folds what is due for one person into one digest.

-- +goose Up
ALTER TABLE assignment_rules ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'mql';

CREATE TABLE lead_handoffs (
  id               INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  lead_id          BIGINT       NOT NULL,
  from_user_id     BIGINT       NOT NULL,
  to_user_id       BIGINT       NOT NULL,
  note             VARCHAR(1000) NOT NULL DEFAULT '',
  status           VARCHAR(16)  NOT NULL,
  reason           VARCHAR(500) NOT NULL DEFAULT '',
  created_at       BIGINT       NOT NULL,
  answered_at      BIGINT       NULL
);
CREATE INDEX lead_handoffs_to ON lead_handoffs (corp_id, to_user_id, status);
CREATE INDEX lead_handoffs_from ON lead_handoffs (corp_id, from_user_id, status);
CREATE INDEX lead_handoffs_lead ON lead_handoffs (corp_id, lead_id);

CREATE TABLE lead_notices (
  id               INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  user_id          BIGINT       NOT NULL,
  text             VARCHAR(1000) NOT NULL,
  created_at       BIGINT       NOT NULL,
  sent_at          BIGINT       NULL,
  claim_token      VARCHAR(24)  NULL,
  claimed_until    BIGINT       NOT NULL DEFAULT 0,
  attempts         INT          NOT NULL DEFAULT 0,
  error            VARCHAR(255) NOT NULL DEFAULT ''
);
CREATE INDEX lead_notices_due ON lead_notices (sent_at, claimed_until);
CREATE INDEX lead_notices_token ON lead_notices (claim_token);

-- +goose Down
DROP TABLE lead_notices;
DROP TABLE lead_handoffs;
ALTER TABLE assignment_rules DROP COLUMN kind;
