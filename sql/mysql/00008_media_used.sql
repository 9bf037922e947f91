-- media: when a file was last sent, so uploads that are about to expire are
-- refreshed ahead of time for files in use (not inside a welcome's 20 s).

-- +goose Up
ALTER TABLE media_files ADD COLUMN used_at BIGINT NULL;
CREATE INDEX media_files_refresh ON media_files (uploaded_at, used_at);

-- +goose Down
DROP INDEX media_files_refresh ON media_files;
ALTER TABLE media_files DROP COLUMN used_at;
