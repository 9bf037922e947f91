-- bus_subject_locks is read and released by its primary key only. Its token
-- index let the optimizer answer a release (a delete of a few keys, each
-- with its token) through the token instead, locking rows in token order
-- that other claims take in key order: lock waits and deadlocks under load.

-- +goose Up
ALTER TABLE bus_subject_locks DROP INDEX bus_subject_locks_token;

-- +goose Down
CREATE INDEX bus_subject_locks_token ON bus_subject_locks (token);
