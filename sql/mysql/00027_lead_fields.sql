-- lead_fields: a corp's own fields on its leads (a renewal date, a contract
-- value, a product line), defined by an admin, and their values per lead
-- (a row per lead and field; an empty value is no row). A value is kept in
-- the column of its field's kind, so a date or number compares and is
-- indexed as one: journeys enter on a date field through
-- lead_field_values_day.

-- +goose Up
CREATE TABLE lead_fields (
  corp_id          VARCHAR(64)  NOT NULL,
  field_key        VARCHAR(40)  NOT NULL,
  label            VARCHAR(64)  NOT NULL,
  kind             VARCHAR(16)  NOT NULL,
  options          TEXT         NOT NULL,
  position         INT          NOT NULL DEFAULT 0,
  created_at       BIGINT       NOT NULL,
  updated_at       BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, field_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE lead_field_values (
  corp_id          VARCHAR(64)  NOT NULL,
  lead_id          BIGINT       NOT NULL,
  field_key        VARCHAR(40)  NOT NULL,
  text_value       VARCHAR(500) NULL,
  num_value        DOUBLE       NULL,
  day_value        CHAR(10)     NULL,
  updated_at       BIGINT       NOT NULL,
  PRIMARY KEY (lead_id, field_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX lead_field_values_day ON lead_field_values (corp_id, field_key, day_value, lead_id);

-- +goose Down
DROP TABLE lead_field_values;
DROP TABLE lead_fields;
