-- jobs: the inbox becomes the bus (see the MySQL migration for the why).

-- +goose Up
ALTER TABLE inbox_events RENAME TO bus_events;
ALTER TABLE inbox_deliveries RENAME TO bus_deliveries;
DROP INDEX inbox_events_dedup;
DROP INDEX inbox_events_received;
CREATE UNIQUE INDEX bus_events_dedup ON bus_events (dedup_key, corp_id);
CREATE INDEX bus_events_received ON bus_events (received_at);
CREATE INDEX bus_events_corp ON bus_events (corp_id, id);
ALTER TABLE bus_events ADD COLUMN source VARCHAR(16) NOT NULL DEFAULT 'wecom';
ALTER TABLE bus_events ADD COLUMN type VARCHAR(128) NOT NULL DEFAULT '';
ALTER TABLE bus_events ADD COLUMN subject VARCHAR(191) NOT NULL DEFAULT '';
UPDATE bus_events SET type = CASE WHEN change_type = '' THEN event ELSE event || '/' || change_type END;

DROP INDEX inbox_deliveries_event_sub;
DROP INDEX inbox_deliveries_claim;
ALTER TABLE bus_deliveries ADD COLUMN subject VARCHAR(191) NOT NULL DEFAULT '';
ALTER TABLE bus_deliveries ADD COLUMN occurred_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE bus_deliveries ADD COLUMN lease_token VARCHAR(64) NOT NULL DEFAULT '';
CREATE UNIQUE INDEX bus_deliveries_event_sub ON bus_deliveries (event_id, subscriber);
CREATE INDEX bus_deliveries_claim ON bus_deliveries (lane, status, available_at);
CREATE INDEX bus_deliveries_order ON bus_deliveries (corp_id, subscriber, subject, status, occurred_at, event_id);
CREATE INDEX bus_deliveries_status ON bus_deliveries (status, subscriber);

CREATE TABLE bus_subject_locks (
  corp_id      VARCHAR(64)  NOT NULL,
  subscriber   VARCHAR(64)  NOT NULL,
  subject      VARCHAR(191) NOT NULL,
  delivery_id  BIGINT       NOT NULL,
  token        VARCHAR(64)  NOT NULL,
  expires_at   BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, subscriber, subject)
);
CREATE INDEX bus_subject_locks_token ON bus_subject_locks (token);

CREATE TABLE bus_subscribers (
  name     VARCHAR(64)  NOT NULL PRIMARY KEY,
  lane     TINYINT      NOT NULL DEFAULT 0,
  types    TEXT         NOT NULL,
  seen_at  BIGINT       NOT NULL
);

ALTER TABLE jobs ADD COLUMN lease_token VARCHAR(64) NOT NULL DEFAULT '';

DROP TABLE domain_events;

-- +goose Down
CREATE TABLE domain_events (
  id          INTEGER      NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id     VARCHAR(64)  NOT NULL,
  type        VARCHAR(64)  NOT NULL,
  dedup_key   CHAR(64)     NOT NULL,
  payload     TEXT         NOT NULL,
  created_at  BIGINT       NOT NULL
);
CREATE UNIQUE INDEX domain_events_dedup ON domain_events (corp_id, dedup_key);
CREATE INDEX domain_events_type ON domain_events (corp_id, type, id);
ALTER TABLE jobs DROP COLUMN lease_token;
DROP TABLE bus_subscribers;
DROP TABLE bus_subject_locks;
DELETE FROM bus_deliveries WHERE event_id IN (SELECT id FROM bus_events WHERE source <> 'wecom');
DELETE FROM bus_events WHERE source <> 'wecom';
DROP INDEX bus_deliveries_order;
DROP INDEX bus_deliveries_status;
DROP INDEX bus_deliveries_event_sub;
DROP INDEX bus_deliveries_claim;
ALTER TABLE bus_deliveries DROP COLUMN subject;
ALTER TABLE bus_deliveries DROP COLUMN occurred_at;
ALTER TABLE bus_deliveries DROP COLUMN lease_token;
DROP INDEX bus_events_dedup;
DROP INDEX bus_events_received;
DROP INDEX bus_events_corp;
ALTER TABLE bus_events DROP COLUMN source;
ALTER TABLE bus_events DROP COLUMN type;
ALTER TABLE bus_events DROP COLUMN subject;
ALTER TABLE bus_events RENAME TO inbox_events;
ALTER TABLE bus_deliveries RENAME TO inbox_deliveries;
CREATE UNIQUE INDEX inbox_events_dedup ON inbox_events (dedup_key, corp_id);
CREATE INDEX inbox_events_received ON inbox_events (received_at);
CREATE UNIQUE INDEX inbox_deliveries_event_sub ON inbox_deliveries (event_id, subscriber);
CREATE INDEX inbox_deliveries_claim ON inbox_deliveries (lane, status, available_at);
