-- What each engagement rule has given a lead (for caps and once-only
-- rules) moves from a table of its own, a row per lead and rule, into the
-- lead's row, as a JSON array of [rule, points, times]: the scoring of an
-- activity and a rescore read it with the lead they lock anyway and write
-- it with the lead they update anyway. A rescore of a million leads spent
-- an eighth of its time reading, diffing and upserting two million rows
-- here.

-- +goose Up
ALTER TABLE leads ADD COLUMN rule_points TEXT NULL;
UPDATE leads l JOIN (
    SELECT lead_id, JSON_ARRAYAGG(JSON_ARRAY(rule_id, points, times)) AS given FROM lead_rule_points GROUP BY lead_id
  ) g ON g.lead_id = l.id
  SET l.rule_points = g.given;
DROP TABLE lead_rule_points;

-- +goose Down
CREATE TABLE lead_rule_points (
  lead_id          BIGINT       NOT NULL,
  rule_id          BIGINT       NOT NULL,
  points           INT          NOT NULL DEFAULT 0,
  times            INT          NOT NULL DEFAULT 0,
  PRIMARY KEY (lead_id, rule_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO lead_rule_points (lead_id, rule_id, points, times)
  SELECT l.id, g.rule_id, g.points, g.times FROM leads l,
    JSON_TABLE(l.rule_points, '$[*]' COLUMNS (rule_id BIGINT PATH '$[0]', points INT PATH '$[1]', times INT PATH '$[2]')) g
  WHERE l.rule_points IS NOT NULL;
ALTER TABLE leads DROP COLUMN rule_points;
