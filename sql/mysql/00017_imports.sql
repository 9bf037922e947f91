-- leads: CSV imports. The file is kept in chunks of a megabyte (any
-- instance's job reads it, and no row is larger than MySQL's packet); the
-- job streams it and records every rejected, merged and flagged line for
-- the report.

-- +goose Up
CREATE TABLE lead_imports (
  id               BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  corp_id          VARCHAR(64)  NOT NULL,
  filename         VARCHAR(255) NOT NULL,
  encoding         VARCHAR(16)  NOT NULL,
  mapping          TEXT         NOT NULL,
  bytes            BIGINT       NOT NULL DEFAULT 0,
  rows_estimate    BIGINT       NOT NULL DEFAULT 0,
  job_id           BIGINT       NOT NULL DEFAULT 0,
  created_by       BIGINT       NOT NULL DEFAULT 0,
  created_at       BIGINT       NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX lead_imports_corp ON lead_imports (corp_id, id);

CREATE TABLE lead_import_chunks (
  import_id        BIGINT       NOT NULL,
  seq              INT          NOT NULL,
  data             MEDIUMBLOB        NOT NULL,
  PRIMARY KEY (import_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE lead_import_lines (
  import_id        BIGINT       NOT NULL,
  line             BIGINT       NOT NULL,
  outcome          VARCHAR(16)  NOT NULL,
  field            VARCHAR(64)  NOT NULL DEFAULT '',
  reason           VARCHAR(500) NOT NULL DEFAULT '',
  person_id        BIGINT       NOT NULL DEFAULT 0,
  PRIMARY KEY (import_id, line, outcome)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE lead_import_lines;
DROP TABLE lead_import_chunks;
DROP TABLE lead_imports;
