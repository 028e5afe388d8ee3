-- Link ownership among ground replicas sharing the database (docs/scale-out.md): each system's
-- link endpoint runs on the one replica holding its lease. The holder renews it before
-- `expires_ms` (the database's clock, ms since the Unix epoch); another replica takes it once it
-- has expired, and every taking raises `generation`, the fencing token a holder's writes name.
CREATE TABLE link_leases (
    system     TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    generation INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);

-- Messages (plans, cancel orders) for a system, queued by a replica that does not hold its
-- lease: the holder moves each into its link's outbox, then deletes the row.
CREATE TABLE link_outbox (
    system    TEXT NOT NULL,
    digest    TEXT NOT NULL,
    message   BLOB NOT NULL,
    queued_ms INTEGER NOT NULL,
    PRIMARY KEY (system, digest)
);
