-- bus_subject_locks is read and released by its primary key only (see the
-- MySQL migration of the same number).

-- +goose Up
DROP INDEX bus_subject_locks_token;

-- +goose Down
CREATE INDEX bus_subject_locks_token ON bus_subject_locks (token);
