-- Downlinks waiting for their files. Objects cross the link after the messages queued with them,
-- so a downlink's SUCCESS usually arrives before the files it lists: the task stays RUNNING, with
-- what the system reported kept here, until every blob is in the store.

-- A downlink its system reported SUCCESS, not yet landed: when (the system's clock) and the
-- reported outputs (JSON of `wire::TaskOutputs`).
CREATE TABLE pending_downlinks (
    execution TEXT NOT NULL,
    task      INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    outputs   TEXT NOT NULL,
    PRIMARY KEY (execution, task),
    FOREIGN KEY (execution, task) REFERENCES tasks(execution, idx) ON DELETE CASCADE
);

-- Every digest a pending downlink lists, so that an arriving object finds the downlinks it may
-- complete.
CREATE TABLE pending_downlink_digests (
    execution TEXT NOT NULL,
    task      INTEGER NOT NULL,
    digest    TEXT NOT NULL,
    PRIMARY KEY (execution, task, digest),
    FOREIGN KEY (execution, task) REFERENCES pending_downlinks(execution, task) ON DELETE CASCADE
);
CREATE INDEX pending_downlink_digests_by_digest ON pending_downlink_digests(digest);

-- An execution's final state as its system reported it, held while a downlink of it is pending
-- and applied when the last one lands.
CREATE TABLE held_execution_states (
    execution TEXT PRIMARY KEY NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    state     TEXT NOT NULL,
    at        INTEGER NOT NULL
);
