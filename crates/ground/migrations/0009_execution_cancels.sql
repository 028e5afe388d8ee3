-- The signed cancel order of each execution called off after its plan was sent (state
-- CANCELLING until the system confirms): kept as sent, so that the same bytes go again when the
-- agent restarts or this ground does (its link's outbox never holds two copies of one).
CREATE TABLE execution_cancels (
    execution TEXT PRIMARY KEY NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    message   BLOB NOT NULL
);
