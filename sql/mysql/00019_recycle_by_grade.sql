-- leads: recycle days per grade within a pool ({"A": 5, "D": 2}); a grade
-- not named uses the pool's recycle_days.

-- +goose Up
ALTER TABLE lead_pools ADD COLUMN recycle_by_grade VARCHAR(255) NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE lead_pools DROP COLUMN recycle_by_grade;
