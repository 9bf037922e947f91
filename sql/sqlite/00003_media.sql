-- wecom/media: files Qiflow keeps (welcome attachments and the like), and the
-- temporary WeCom media id each one currently has per corp (WeCom forgets
-- temporary media after 3 days, so files are re-uploaded when needed).

-- +goose Up
CREATE TABLE media_files (
  id            INTEGER       NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id       VARCHAR(64)   NOT NULL,
  kind          VARCHAR(16)   NOT NULL,
  filename      VARCHAR(255)  NOT NULL,
  content_type  VARCHAR(128)  NOT NULL DEFAULT '',
  size          BIGINT        NOT NULL,
  sha256        CHAR(64)      NOT NULL,
  data          BLOB          NOT NULL,
  media_id      VARCHAR(255)  NOT NULL DEFAULT '',
  uploaded_at   BIGINT        NULL,
  created_by    BIGINT        NOT NULL DEFAULT 0,
  created_at    BIGINT        NOT NULL
);
CREATE INDEX media_files_corp ON media_files (corp_id, id);

-- +goose Down
DROP TABLE media_files;
