-- corp_calendars: a corp's work calendar as an admin set it in the console
-- (JSON of the configuration's calendar shape); it replaces the one in the
-- configuration file, and every instance reloads it.

-- +goose Up
CREATE TABLE corp_calendars (
  corp_id          VARCHAR(64)  NOT NULL PRIMARY KEY,
  config           TEXT         NOT NULL,
  updated_by       BIGINT       NOT NULL DEFAULT 0,
  updated_at       BIGINT       NOT NULL
);

-- +goose Down
DROP TABLE corp_calendars;
