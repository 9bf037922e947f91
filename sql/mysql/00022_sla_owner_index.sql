-- lead_slas: a user's running SLA clocks, soonest first (the console's
-- home page), without walking every open clock of the corp.

-- +goose Up
CREATE INDEX lead_slas_owner ON lead_slas (corp_id, owner_user_id, status, due_at);

-- +goose Down
DROP INDEX lead_slas_owner ON lead_slas;
