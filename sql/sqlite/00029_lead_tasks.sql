-- lead_tasks: follow-ups on leads for a user (usually the lead's owner),
-- made by hand, the API or a journey (whose step is its idempotency key,
-- so a retried step makes no second task), with when they are due and
-- when and by whom they were done, and when its owner was reminded that it
-- fell due.

-- +goose Up
CREATE TABLE lead_tasks (
  id               INTEGER       NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  lead_id          BIGINT       NOT NULL,
  user_id          BIGINT       NOT NULL,
  title            VARCHAR(255) NOT NULL,
  due_at           BIGINT       NOT NULL,
  done_at          BIGINT       NULL,
  done_by          BIGINT       NOT NULL DEFAULT 0,
  reminded_at      BIGINT       NULL,
  created_by       BIGINT       NOT NULL DEFAULT 0,
  idem_key         VARCHAR(64)  NULL,
  created_at       BIGINT       NOT NULL
);
CREATE UNIQUE INDEX lead_tasks_key ON lead_tasks (corp_id, idem_key);
CREATE INDEX lead_tasks_user ON lead_tasks (corp_id, user_id, done_at, due_at);
CREATE INDEX lead_tasks_lead ON lead_tasks (lead_id, id);
CREATE INDEX lead_tasks_due ON lead_tasks (reminded_at, done_at, due_at);

-- +goose Down
DROP TABLE lead_tasks;
