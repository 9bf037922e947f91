-- livecode: the outcome of each customer and group handed over from staff who
-- left (WeCom answers errcode 0 when the 24-hour hand-over starts; the
-- outcome comes from resigned/transfer_result later).

-- +goose Up
CREATE TABLE livecode_transfers (
  corp_id          VARCHAR(64)  NOT NULL,
  handover_userid  VARCHAR(64)  NOT NULL,
  item             VARCHAR(64)  NOT NULL,
  kind             VARCHAR(16)  NOT NULL,
  takeover_userid  VARCHAR(64)  NOT NULL,
  code_id          BIGINT       NOT NULL,
  status           VARCHAR(16)  NOT NULL,
  errcode          BIGINT       NOT NULL DEFAULT 0,
  created_at       BIGINT       NOT NULL,
  updated_at       BIGINT       NOT NULL,
  PRIMARY KEY (corp_id, handover_userid, item)
);
CREATE INDEX livecode_transfers_status ON livecode_transfers (status, corp_id, handover_userid);

-- +goose Down
DROP TABLE livecode_transfers;
