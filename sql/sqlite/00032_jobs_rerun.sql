-- A request for a running job makes it run again once this run ends (see
-- the MySQL migration of the same number).

-- +goose Up
ALTER TABLE jobs ADD COLUMN rerun_requested TINYINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE jobs DROP COLUMN rerun_requested;
