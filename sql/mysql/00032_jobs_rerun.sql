-- A request for a job that is running (the same unique key: a rescore after
-- a rule changes, a segment rebuild after its filter changes) was dropped,
-- and a change made after the run had read its inputs was never applied.
-- Now the request is recorded on the running job, which runs again, from
-- the start, once this run ends.

-- +goose Up
ALTER TABLE jobs ADD COLUMN rerun_requested TINYINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE jobs DROP COLUMN rerun_requested;
