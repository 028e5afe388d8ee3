-- The element set an operator last sent each system on its own (`PUT
-- /api/v1/systems/{system}/elements`): its lines, its epoch (Unix ms), when and by whom it was
-- sent, and the signed `wire::Message::Elements` as sent, so that the same bytes go again at
-- each start of the system's agent (the agent ignores one no newer than the one it holds).
CREATE TABLE system_elements (
    system   TEXT PRIMARY KEY NOT NULL,
    name     TEXT,
    line1    TEXT NOT NULL,
    line2    TEXT NOT NULL,
    epoch_ms INTEGER NOT NULL,
    sent_ms  INTEGER NOT NULL,
    sent_by  TEXT NOT NULL,
    message  BLOB NOT NULL
);
