-- The plan each execution was compiled into, as sent: when a flight agent restarts (a new boot id
-- in its Hello) the plans of unfinished executions are sent again, so a plan the agent received
-- but had not yet stored is never lost.
CREATE TABLE execution_plans (
    execution TEXT PRIMARY KEY NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    plan      BLOB NOT NULL
);
