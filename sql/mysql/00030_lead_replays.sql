-- lead_replays: the engagement rules and half-life (their version) each
-- corp's leads were last rescored with by a complete replay of their
-- activities. A rescore after a change that cannot touch engagement (fit
-- rules, grade bounds, the MQL threshold) leaves engagement as it is, and
-- reads no activities.

-- +goose Up
CREATE TABLE lead_replays (
  corp_id          VARCHAR(64)  NOT NULL PRIMARY KEY,
  version          VARCHAR(64)  NOT NULL,
  updated_at       BIGINT       NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE lead_replays;
