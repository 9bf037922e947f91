-- leads: public web forms. A form's fields map to person and lead fields
-- (the rest are kept on its activity); its hosted page is /f/{slug}, so
-- the slug is unique across corps.

-- +goose Up
CREATE TABLE lead_forms (
  id               INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  slug             VARCHAR(64)  NOT NULL,
  title            VARCHAR(128) NOT NULL,
  intro            VARCHAR(1000) NOT NULL DEFAULT '',
  fields           TEXT         NOT NULL,
  consent_text     VARCHAR(1000) NOT NULL DEFAULT '',
  consent_required INT          NOT NULL DEFAULT 0,
  thanks           VARCHAR(500) NOT NULL DEFAULT '',
  channel          VARCHAR(64)  NOT NULL DEFAULT '',
  active           INT          NOT NULL DEFAULT 1,
  created_at       BIGINT       NOT NULL,
  updated_at       BIGINT       NOT NULL
);
CREATE UNIQUE INDEX lead_forms_slug ON lead_forms (slug);
CREATE INDEX lead_forms_corp ON lead_forms (corp_id);

-- +goose Down
DROP TABLE lead_forms;
