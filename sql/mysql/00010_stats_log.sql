-- livecode: counter changes are appended here by the transactions that
-- cause them (no two writers wait on one hot statistics row) and folded
-- into live_code_stats every second; readers sum both tables, so counts
-- are exact at any moment.

-- +goose Up
CREATE TABLE live_code_stats_log (
  id               BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  corp_id          VARCHAR(64)  NOT NULL,
  code_id          BIGINT       NOT NULL,
  userid           VARCHAR(64)  NOT NULL,
  day              CHAR(10)     NOT NULL,
  visits           INT          NOT NULL DEFAULT 0,
  adds             INT          NOT NULL DEFAULT 0,
  readds           INT          NOT NULL DEFAULT 0,
  lost_customer    INT          NOT NULL DEFAULT 0,
  lost_staff       INT          NOT NULL DEFAULT 0,
  welcome_sent     INT          NOT NULL DEFAULT 0,
  welcome_missed   INT          NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Statistics are read by corp and date range.
CREATE INDEX live_code_stats_day ON live_code_stats (corp_id, day);

-- +goose Down
DROP INDEX live_code_stats_day ON live_code_stats;
DROP TABLE live_code_stats_log;
