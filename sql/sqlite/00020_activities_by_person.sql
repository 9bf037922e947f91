-- MySQL stores activities in the order of their person and time (its
-- 00020). SQLite keeps its rowid table and the (person_id, at) index: a
-- rowid lookup is cheap there. This file keeps the versions of both
-- dialects in step.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
