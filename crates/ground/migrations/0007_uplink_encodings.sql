-- Sending only what a satellite lacks (docs/delta.md, "On the link").

-- The patches the ground made for uplinks, each kept as a blob: what turns `base` (a blob; ''
-- for none, the object compressed) into `target`. Made once, sent as often as asked.
CREATE TABLE encodings (
    target TEXT NOT NULL,
    base   TEXT NOT NULL,
    -- The patch's digest: the blob sent.
    patch  TEXT NOT NULL,
    -- `delta::Kind::name`: whole-zstd, zstd-ref, bsdiff, exe.
    kind   TEXT NOT NULL,
    size   INTEGER NOT NULL,
    PRIMARY KEY (target, base)
);
CREATE INDEX encodings_by_patch ON encodings(patch);

-- Objects a system asked for with a `Want`, until the encoder has queued them: what it holds to
-- make them from (a JSON list of digests), and whether it asked for the object itself.
CREATE TABLE uplink_wants (
    system   TEXT NOT NULL,
    target   TEXT NOT NULL,
    bases    TEXT NOT NULL,
    whole    INTEGER NOT NULL,
    asked_at INTEGER NOT NULL,
    PRIMARY KEY (system, target)
);
CREATE INDEX uplink_wants_by_time ON uplink_wants(system, asked_at);

-- What went up for each execution: for each object it needed, the object sent (the object
-- itself, or a patch) with its kind (`raw` or a patch kind), the base of a delta, and its bytes.
CREATE TABLE execution_sends (
    execution TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    target    TEXT NOT NULL,
    object    TEXT NOT NULL,
    kind      TEXT NOT NULL,
    base      TEXT,
    size      INTEGER NOT NULL,
    raw_size  INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (execution, object)
);
CREATE INDEX execution_sends_by_object ON execution_sends(object);

-- The ground's mirror of what each system holds onboard, besides its volumes' listings
-- (`volume_files`): each file's content digest as the system reported it (NULL until reported,
-- or when the system could not hash it yet), and the objects in its object store.
ALTER TABLE volume_files ADD COLUMN digest TEXT;
CREATE TABLE onboard_objects (
    system TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (system, digest)
);
-- How the mirror compares with the system's own summary (JSON): when last compared, what
-- differed, since when, and when it was last repaired.
ALTER TABLE systems ADD COLUMN inventory TEXT;
