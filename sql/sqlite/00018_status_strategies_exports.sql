-- leads: a status within the stage (new, attempting, connected,
-- unqualified with a reason); assignment strategies (round robin,
-- weighted, least loaded) and rules that assign only in working hours;
-- the audit of exports.

-- +goose Up
ALTER TABLE leads ADD COLUMN status VARCHAR(16) NOT NULL DEFAULT 'new';
ALTER TABLE leads ADD COLUMN status_reason VARCHAR(255) NOT NULL DEFAULT '';

ALTER TABLE assignment_rules ADD COLUMN strategy VARCHAR(16) NOT NULL DEFAULT 'round_robin';
-- weighted: {"<user id>": weight, ...}
ALTER TABLE assignment_rules ADD COLUMN weights TEXT NULL;
ALTER TABLE assignment_rules ADD COLUMN working_hours INT NOT NULL DEFAULT 0;

CREATE TABLE lead_exports (
  id               INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  user_id          BIGINT       NOT NULL,
  filter           VARCHAR(1000) NOT NULL,
  row_count        BIGINT       NOT NULL DEFAULT 0,
  masked           INT          NOT NULL DEFAULT 1,
  at               BIGINT       NOT NULL
);
CREATE INDEX lead_exports_corp ON lead_exports (corp_id, id);

-- +goose Down
DROP TABLE lead_exports;
ALTER TABLE assignment_rules DROP COLUMN working_hours;
ALTER TABLE assignment_rules DROP COLUMN weights;
ALTER TABLE assignment_rules DROP COLUMN strategy;
ALTER TABLE leads DROP COLUMN status_reason;
ALTER TABLE leads DROP COLUMN status;
