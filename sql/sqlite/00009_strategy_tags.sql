-- directory: rule-group (strategy) tags are mirrored beside corp tags; a
-- group's strategy_id is 0 for a corp tag group.

-- +goose Up
ALTER TABLE tag_groups ADD COLUMN strategy_id BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE tag_groups DROP COLUMN strategy_id;
