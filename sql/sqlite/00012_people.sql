-- leads: what a person is (title, region, company), merges of people that
-- turned out to be one (undoable: the moved identities are recorded and the
-- merged person and lead stay, marked merged_into), review flags, companies
-- de-duplicated on a normalised name, the BANT fields and fit of a lead,
-- and the upsert API's idempotency keys.

-- +goose Up
ALTER TABLE people ADD COLUMN title VARCHAR(128) NOT NULL DEFAULT '';
ALTER TABLE people ADD COLUMN region VARCHAR(64) NOT NULL DEFAULT '';
ALTER TABLE people ADD COLUMN company_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE people ADD COLUMN merged_into BIGINT NOT NULL DEFAULT 0;
-- kept but flagged: why (invalid mobile, missing name...), and test data
ALTER TABLE people ADD COLUMN needs_review INT NOT NULL DEFAULT 0;
ALTER TABLE people ADD COLUMN review_reasons VARCHAR(500) NOT NULL DEFAULT '';
ALTER TABLE people ADD COLUMN test_data INT NOT NULL DEFAULT 0;
CREATE INDEX people_merged ON people (merged_into);

ALTER TABLE leads ADD COLUMN merged_into BIGINT NOT NULL DEFAULT 0;
ALTER TABLE leads ADD COLUMN budget VARCHAR(64) NOT NULL DEFAULT '';
ALTER TABLE leads ADD COLUMN authority VARCHAR(64) NOT NULL DEFAULT '';
ALTER TABLE leads ADD COLUMN need VARCHAR(255) NOT NULL DEFAULT '';
ALTER TABLE leads ADD COLUMN timeline VARCHAR(64) NOT NULL DEFAULT '';
ALTER TABLE leads ADD COLUMN fit_points INT NOT NULL DEFAULT 0;
ALTER TABLE leads ADD COLUMN grade CHAR(1) NOT NULL DEFAULT 'D';

CREATE TABLE companies (
  id               INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  name             VARCHAR(255) NOT NULL,
  -- the name folded to half-width, without legal suffixes, brackets,
  -- spaces and punctuation, lowercased: two names that fold alike are one
  norm_name        VARCHAR(191) NOT NULL,
  industry         VARCHAR(64)  NOT NULL DEFAULT '',
  size             INT          NOT NULL DEFAULT 0,
  created_at       BIGINT       NOT NULL,
  updated_at       BIGINT       NOT NULL
);
CREATE UNIQUE INDEX companies_norm ON companies (corp_id, norm_name);

-- Companies whose names are alike but not the same, for a person to decide.
CREATE TABLE company_reviews (
  corp_id          VARCHAR(64)  NOT NULL,
  company_id       BIGINT       NOT NULL,
  similar_id       BIGINT       NOT NULL,
  reason           VARCHAR(255) NOT NULL,
  created_at       BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, company_id, similar_id)
);

CREATE TABLE person_merges (
  id               INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  survivor_id      BIGINT       NOT NULL,
  merged_id        BIGINT       NOT NULL,
  reason           VARCHAR(255) NOT NULL,
  -- the identities that moved to the survivor ([[kind, value], ...])
  identities       TEXT         NOT NULL,
  -- the merged lead, and the engagement it brought (thousandths, as of at)
  lead_id          BIGINT       NOT NULL DEFAULT 0,
  engagement_milli BIGINT       NOT NULL DEFAULT 0,
  actor_user_id    BIGINT       NOT NULL DEFAULT 0,
  at               BIGINT       NOT NULL,
  undone_at        BIGINT       NULL,
  undone_by        BIGINT       NOT NULL DEFAULT 0
);
CREATE INDEX person_merges_survivor ON person_merges (corp_id, survivor_id);
CREATE INDEX person_merges_merged ON person_merges (corp_id, merged_id);

-- An upsert's idempotency key: a call repeated with the key answers what
-- the first did (the same body) or 409 (another body).
CREATE TABLE lead_upserts (
  corp_id          VARCHAR(64)  NOT NULL,
  idem_key         VARCHAR(128) NOT NULL,
  body_hash        CHAR(64)     NOT NULL,
  person_id        BIGINT       NOT NULL,
  lead_id          BIGINT       NOT NULL,
  created_at       BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, idem_key)
);

-- +goose Down
DROP TABLE lead_upserts;
DROP TABLE person_merges;
DROP TABLE company_reviews;
DROP TABLE companies;
DROP INDEX people_merged;
ALTER TABLE leads DROP COLUMN grade;
ALTER TABLE leads DROP COLUMN fit_points;
ALTER TABLE leads DROP COLUMN timeline;
ALTER TABLE leads DROP COLUMN need;
ALTER TABLE leads DROP COLUMN authority;
ALTER TABLE leads DROP COLUMN budget;
ALTER TABLE leads DROP COLUMN merged_into;
ALTER TABLE people DROP COLUMN test_data;
ALTER TABLE people DROP COLUMN review_reasons;
ALTER TABLE people DROP COLUMN needs_review;
ALTER TABLE people DROP COLUMN merged_into;
ALTER TABLE people DROP COLUMN company_id;
ALTER TABLE people DROP COLUMN region;
ALTER TABLE people DROP COLUMN title;
