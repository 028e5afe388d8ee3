-- The last sequence number given to a plan for each system. Every plan is signed with its system,
-- its sequence, its issue time and its expiry, and a flight agent never accepts a sequence number
-- twice: the number must only ever grow. It lives in its own table, not derived from the
-- executions, so that nothing deleted can bring a number back. (A database restored from an
-- older backup would hand out numbers again, which agents refuse as replays: restore this table
-- above the highest number sent.)
CREATE TABLE plan_sequences (
    system TEXT PRIMARY KEY NOT NULL,
    last   INTEGER NOT NULL
);
