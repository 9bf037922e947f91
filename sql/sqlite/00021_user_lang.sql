-- users: the console's language for each user (zh-CN or en); empty until
-- the user chooses, when the browser's Accept-Language decides.

-- +goose Up
ALTER TABLE users ADD COLUMN lang VARCHAR(8) NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE users DROP COLUMN lang;
