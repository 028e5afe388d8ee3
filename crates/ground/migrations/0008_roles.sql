-- Roles, disabled users, quotas and the approval gate.

-- What a user may do: 'tenant' (its own namespaces, operations and executions) or 'operator'
-- (also every tenant's executions and queues, approvals, users and quotas).
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'tenant';
-- When an operator disabled the user (it can no longer log in; its sessions ended then); NULL
-- while it may log in. A restart with the user in the users file leaves it disabled.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;

-- Each tenant's quotas as an operator set them, NULL for no limit. The ground stores and shows
-- them; the flight agent enforces them onboard.
CREATE TABLE quotas (
    tenant                  TEXT PRIMARY KEY NOT NULL REFERENCES users(name),
    volume_bytes            INTEGER,
    image_bytes             INTEGER,
    compute_seconds_per_day INTEGER,
    downlink_bytes_per_day  INTEGER,
    updated_at              INTEGER NOT NULL,
    updated_by              TEXT NOT NULL
);

-- The plan of an execution waiting for an operator's approval (state AWAITING_APPROVAL):
-- compiled when it was started, so the operator approves exactly what will go up, but neither
-- bound to its system, signed, queued nor sent. Approval seals and sends it and deletes the row;
-- rejection or cancellation deletes it.
CREATE TABLE awaiting_plans (
    execution TEXT PRIMARY KEY NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    plan      BLOB NOT NULL
);
CREATE INDEX executions_by_state ON executions(state, created_at);
