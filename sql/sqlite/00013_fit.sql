-- leads: fit (who a lead is: rules over title, company, region and the BANT
-- fields give points, points give a grade), the MQL bar on grade, and
-- cooling: the moment an MQL's decaying engagement falls below the
-- threshold is computed when the score changes and kept in cools_at, so a
-- cron finds exactly the leads due instead of rescoring every row.

-- +goose Up
CREATE TABLE fit_rules (
  id               INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  name             VARCHAR(64)  NOT NULL,
  cond             TEXT         NOT NULL,
  points           INT          NOT NULL,
  created_at       BIGINT       NOT NULL,
  updated_at       BIGINT       NOT NULL
);
CREATE INDEX fit_rules_corp ON fit_rules (corp_id);

ALTER TABLE lead_settings ADD COLUMN grade_a INT NOT NULL DEFAULT 60;
ALTER TABLE lead_settings ADD COLUMN grade_b INT NOT NULL DEFAULT 40;
ALTER TABLE lead_settings ADD COLUMN grade_c INT NOT NULL DEFAULT 20;
ALTER TABLE lead_settings ADD COLUMN mql_min_grade CHAR(1) NOT NULL DEFAULT 'D';
-- what a cooled MQL does: keep (marked cooling) or nurture (back to the pool)
ALTER TABLE lead_settings ADD COLUMN cooling_action VARCHAR(16) NOT NULL DEFAULT 'keep';

ALTER TABLE leads ADD COLUMN cooling INT NOT NULL DEFAULT 0;
ALTER TABLE leads ADD COLUMN cools_at BIGINT NULL;
CREATE INDEX leads_cools ON leads (cools_at);

-- +goose Down
DROP INDEX leads_cools;
ALTER TABLE leads DROP COLUMN cools_at;
ALTER TABLE leads DROP COLUMN cooling;
ALTER TABLE lead_settings DROP COLUMN cooling_action;
ALTER TABLE lead_settings DROP COLUMN mql_min_grade;
ALTER TABLE lead_settings DROP COLUMN grade_c;
ALTER TABLE lead_settings DROP COLUMN grade_b;
ALTER TABLE lead_settings DROP COLUMN grade_a;
DROP TABLE fit_rules;
