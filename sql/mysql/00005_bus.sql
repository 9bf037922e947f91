-- jobs: the inbox becomes the bus. WeCom events (from the callback gateway)
-- and domain events (written by domain packages inside their own
-- transactions: the outbox) share one table and one delivery machinery.
-- Each event has a subject (the contact or group it is about): a subscriber
-- handles one subject's events one at a time, oldest first. Claims carry a
-- lease token that every settle is fenced on.

-- +goose Up
RENAME TABLE inbox_events TO bus_events, inbox_deliveries TO bus_deliveries;

ALTER TABLE bus_events
  ADD COLUMN source  VARCHAR(16)  NOT NULL DEFAULT 'wecom' AFTER corp_id,
  ADD COLUMN type    VARCHAR(128) NOT NULL DEFAULT '' AFTER change_type,
  ADD COLUMN subject VARCHAR(191) NOT NULL DEFAULT '' AFTER type,
  ADD KEY bus_events_corp (corp_id, id),
  RENAME INDEX inbox_events_dedup TO bus_events_dedup,
  RENAME INDEX inbox_events_received TO bus_events_received;
UPDATE bus_events SET type = CASE WHEN change_type = '' THEN event ELSE CONCAT(event, '/', change_type) END;

-- subject and occurred_at are copied from the event, so the claim's
-- "oldest unfinished per subscriber and subject" is one index probe.
ALTER TABLE bus_deliveries
  ADD COLUMN subject     VARCHAR(191) NOT NULL DEFAULT '' AFTER subscriber,
  ADD COLUMN occurred_at BIGINT       NOT NULL DEFAULT 0 AFTER subject,
  ADD COLUMN lease_token VARCHAR(64)  NOT NULL DEFAULT '' AFTER lease_owner,
  ADD KEY bus_deliveries_order (corp_id, subscriber, subject, status, occurred_at, event_id),
  ADD KEY bus_deliveries_status (status, subscriber),
  RENAME INDEX inbox_deliveries_event_sub TO bus_deliveries_event_sub,
  RENAME INDEX inbox_deliveries_claim TO bus_deliveries_claim;

-- One live handler per subscriber and subject: a claim takes this row (or
-- one whose lease expired), a settle deletes it. A unique key, so it holds
-- on any engine, with or without SKIP LOCKED.
CREATE TABLE bus_subject_locks (
  corp_id      VARCHAR(64)  NOT NULL,
  subscriber   VARCHAR(64)  NOT NULL,
  subject      VARCHAR(191) NOT NULL,
  delivery_id  BIGINT       NOT NULL,
  token        VARCHAR(64)  NOT NULL,
  expires_at   BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, subscriber, subject),
  KEY bus_subject_locks_token (token)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Every subscriber any instance has, so an instance appending an event
-- creates deliveries for subscribers only newer instances know (rolling deploys).
CREATE TABLE bus_subscribers (
  name     VARCHAR(64)  NOT NULL PRIMARY KEY,
  lane     TINYINT      NOT NULL DEFAULT 0,
  types    TEXT         NOT NULL,
  seen_at  BIGINT       NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

ALTER TABLE jobs ADD COLUMN lease_token VARCHAR(64) NOT NULL DEFAULT '' AFTER lease_owner;

-- Nothing ever read domain_events: its ContactAdded rows are all derivable
-- from contact_sources. Domain events now live in bus_events.
DROP TABLE domain_events;

-- +goose Down
CREATE TABLE domain_events (
  id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  corp_id     VARCHAR(64)  NOT NULL,
  type        VARCHAR(64)  NOT NULL,
  dedup_key   CHAR(64)     NOT NULL,
  payload     TEXT         NOT NULL,
  created_at  BIGINT       NOT NULL,
  UNIQUE KEY domain_events_dedup (corp_id, dedup_key),
  KEY domain_events_type (corp_id, type, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
ALTER TABLE jobs DROP COLUMN lease_token;
DROP TABLE bus_subscribers;
DROP TABLE bus_subject_locks;
DELETE FROM bus_deliveries WHERE event_id IN (SELECT id FROM bus_events WHERE source <> 'wecom');
DELETE FROM bus_events WHERE source <> 'wecom';
ALTER TABLE bus_deliveries DROP KEY bus_deliveries_order, DROP KEY bus_deliveries_status,
  RENAME INDEX bus_deliveries_event_sub TO inbox_deliveries_event_sub, RENAME INDEX bus_deliveries_claim TO inbox_deliveries_claim,
  DROP COLUMN subject, DROP COLUMN occurred_at, DROP COLUMN lease_token;
ALTER TABLE bus_events DROP KEY bus_events_corp,
  RENAME INDEX bus_events_dedup TO inbox_events_dedup, RENAME INDEX bus_events_received TO inbox_events_received,
  DROP COLUMN source, DROP COLUMN type, DROP COLUMN subject;
RENAME TABLE bus_events TO inbox_events, bus_deliveries TO inbox_deliveries;
