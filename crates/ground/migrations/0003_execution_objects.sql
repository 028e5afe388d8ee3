-- What each execution sends up: its plan (a message transfer, named by the sha256 of the encoded
-- message) and every object its uplink tasks need. The uplink queue of a system names transfers
-- by digest only; this table tells whose executions each one is for.

CREATE TABLE execution_objects (
    execution TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    digest    TEXT NOT NULL,
    size      INTEGER NOT NULL,
    -- 1 for the plan message, 0 for an object.
    message   INTEGER NOT NULL,
    PRIMARY KEY (execution, digest)
);
CREATE INDEX execution_objects_by_digest ON execution_objects(digest);

-- The executions of a system still under way, whose transfers may be queued.
CREATE INDEX executions_by_system_state ON executions(system, state);
