-- activities are stored in the order of their person and time: InnoDB keeps
-- a table in its primary key's order, and activities are read a person at a
-- time (the timeline, the rescore job's replay of every lead's activities),
-- which with an id key cost a random primary-key lookup per row (the replay
-- of ten million activities spent most of its time there). The id keeps a
-- unique index of its own: AUTO_INCREMENT needs it and some code reads by
-- it. A new table is filled and swapped in rather than the key altered in
-- place, which engines such as TiDB refuse for a clustered key.

-- +goose Up
CREATE TABLE activities_by_person (
  id               BIGINT       NOT NULL AUTO_INCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  person_id        BIGINT       NOT NULL,
  type             VARCHAR(64)  NOT NULL,
  at               BIGINT       NOT NULL,
  properties       TEXT         NOT NULL,
  idem_key         VARCHAR(128) NULL,
  batch            VARCHAR(24)  NOT NULL DEFAULT '',
  created_at       BIGINT       NOT NULL,
  PRIMARY KEY (person_id, at, id),
  UNIQUE KEY activities_id (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO activities_by_person (id, corp_id, person_id, type, at, properties, idem_key, batch, created_at)
  SELECT id, corp_id, person_id, type, at, properties, idem_key, batch, created_at FROM activities;
DROP TABLE activities;
RENAME TABLE activities_by_person TO activities;
CREATE UNIQUE INDEX activities_key ON activities (corp_id, idem_key);
CREATE INDEX activities_batch ON activities (batch);

-- +goose Down
CREATE TABLE activities_by_id (
  id               BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  corp_id          VARCHAR(64)  NOT NULL,
  person_id        BIGINT       NOT NULL,
  type             VARCHAR(64)  NOT NULL,
  at               BIGINT       NOT NULL,
  properties       TEXT         NOT NULL,
  idem_key         VARCHAR(128) NULL,
  batch            VARCHAR(24)  NOT NULL DEFAULT '',
  created_at       BIGINT       NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO activities_by_id (id, corp_id, person_id, type, at, properties, idem_key, batch, created_at)
  SELECT id, corp_id, person_id, type, at, properties, idem_key, batch, created_at FROM activities;
DROP TABLE activities;
RENAME TABLE activities_by_id TO activities;
CREATE UNIQUE INDEX activities_key ON activities (corp_id, idem_key);
CREATE INDEX activities_person ON activities (person_id, at);
CREATE INDEX activities_batch ON activities (batch);
