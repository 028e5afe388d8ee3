-- The last sequence number given to a plan for each system. Every plan is signed with its system,
-- its sequence, its issue time and its expiry; a flight agent never accepts a sequence twice, so
-- the number must only ever grow, even across executions deleted or a database restored from the
-- plans it sent.
CREATE TABLE plan_sequences (
    system TEXT PRIMARY KEY NOT NULL,
    last   INTEGER NOT NULL
);
