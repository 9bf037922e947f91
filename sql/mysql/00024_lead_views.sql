-- lead_views: a user's saved filters of the lead pool (the console's saved
-- views), by name.

-- +goose Up
CREATE TABLE lead_views (
  id               BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  corp_id          VARCHAR(64)  NOT NULL,
  user_id          BIGINT       NOT NULL,
  name             VARCHAR(64)  NOT NULL,
  query            VARCHAR(1000) NOT NULL,
  created_at       BIGINT       NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX lead_views_name ON lead_views (corp_id, user_id, name);

-- +goose Down
DROP TABLE lead_views;
