-- people: found by the start of their name (the console's search).

-- +goose Up
CREATE INDEX people_name ON people (corp_id, name);

-- +goose Down
DROP INDEX people_name ON people;
