-- The onboard telemetry digests each system downlinks (`wire::Message::TelemetryDigest`,
-- docs/telemetry.md): per data type, buckets of mission time (`bucket_start_ms`, Unix ms, and
-- `bucket_ms` wide) with their sample count and minimum, mean and maximum in thousandths of the
-- data type's unit. A bucket received again replaces the one held (the agent may send a bucket
-- twice across a restart). Kept for 30 days of mission time per system, counted back from the
-- newest bucket received.
CREATE TABLE telemetry_buckets (
    system          TEXT NOT NULL,
    data_type       TEXT NOT NULL,
    bucket_start_ms INTEGER NOT NULL,
    bucket_ms       INTEGER NOT NULL,
    sample_count    INTEGER NOT NULL,
    min_milli       INTEGER NOT NULL,
    mean_milli      INTEGER NOT NULL,
    max_milli       INTEGER NOT NULL,
    received_ms     INTEGER NOT NULL,
    PRIMARY KEY (system, data_type, bucket_start_ms)
);

CREATE INDEX telemetry_buckets_by_time ON telemetry_buckets (system, bucket_start_ms);
