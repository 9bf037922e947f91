-- What each engagement rule has given a lead moves into the lead's row, as
-- a JSON array of [rule, points, times] (see the MySQL migration of the
-- same number).

-- +goose Up
ALTER TABLE leads ADD COLUMN rule_points TEXT NULL;
UPDATE leads SET rule_points = (
    SELECT json_group_array(json_array(rule_id, points, times)) FROM lead_rule_points WHERE lead_id = leads.id
  ) WHERE id IN (SELECT lead_id FROM lead_rule_points);
DROP TABLE lead_rule_points;

-- +goose Down
CREATE TABLE lead_rule_points (
  lead_id          BIGINT       NOT NULL,
  rule_id          BIGINT       NOT NULL,
  points           INT          NOT NULL DEFAULT 0,
  times            INT          NOT NULL DEFAULT 0,
  PRIMARY KEY (lead_id, rule_id)
);
INSERT INTO lead_rule_points (lead_id, rule_id, points, times)
  SELECT l.id, json_extract(g.value, '$[0]'), json_extract(g.value, '$[1]'), json_extract(g.value, '$[2]')
  FROM leads l, json_each(l.rule_points) g WHERE l.rule_points IS NOT NULL;
ALTER TABLE leads DROP COLUMN rule_points;
