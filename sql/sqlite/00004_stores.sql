-- livecode: stores for store codes (门店活码). Each store hands visitors to
-- its own channel or group code; coordinates keep their datum (WGS-84 from
-- GPS, GCJ-02 from Chinese map services) and are compared in one.

-- +goose Up
CREATE TABLE stores (
  id          INTEGER       NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id     VARCHAR(64)   NOT NULL,
  name        VARCHAR(255)  NOT NULL,
  address     VARCHAR(512)  NOT NULL DEFAULT '',
  city        VARCHAR(64)   NOT NULL DEFAULT '',
  lat         DOUBLE        NOT NULL,
  lng         DOUBLE        NOT NULL,
  datum       VARCHAR(8)    NOT NULL,
  code_id     BIGINT        NOT NULL,
  created_at  BIGINT        NOT NULL,
  updated_at  BIGINT        NOT NULL
);
CREATE INDEX stores_corp ON stores (corp_id, city, id);

-- +goose Down
DROP TABLE stores;
