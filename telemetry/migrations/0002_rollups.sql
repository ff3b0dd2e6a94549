-- Incremental rollups: per-device energy in 15-minute UTC buckets (every modern UTC offset is
-- a multiple of 15 minutes, so these buckets tile every local hour and day), the ranges that
-- new or late readings made dirty, and the global watermark up to which buckets are rolled.

CREATE TABLE rollup_15m (
    device_id   uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    bucket      timestamptz NOT NULL,
    -- Integral of the positive and of the negative part of the power, both >= 0.
    wh_pos      double precision NOT NULL,
    wh_neg      double precision NOT NULL,
    -- Intervals starting in this bucket that the gap cap shortened.
    capped_gaps integer NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, bucket)
);

-- Ranges [from_ts, to_ts) of a device whose buckets must be recomputed; from_ts is aligned
-- to a bucket start. Reads treat everything from a device's earliest dirty range on as raw.
CREATE TABLE rollup_dirty (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    from_ts   timestamptz NOT NULL,
    to_ts     timestamptz NOT NULL,
    CHECK (from_ts < to_ts)
);
CREATE INDEX rollup_dirty_device_idx ON rollup_dirty (device_id, from_ts);

-- One row: buckets before rolled_until are computed, except inside dirty ranges.
-- gap_cap_seconds records the cap the rollups were computed with; a different cap
-- needs a rebuild, never a silent mix.
CREATE TABLE rollup_state (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    rolled_until    timestamptz NOT NULL,
    gap_cap_seconds integer,
    refreshed_at    timestamptz
);
INSERT INTO rollup_state (rolled_until) VALUES ('-infinity');

-- Readings refused for a reason that belongs to a known device and instant, kept for the
-- data-quality figures (implausible readings in a window) and for audit.
CREATE TABLE rejected_readings (
    device_id   uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    ts          timestamptz NOT NULL,
    watts       double precision,
    code        text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rejected_readings_device_ts_idx ON rejected_readings (device_id, ts);

-- Raw readings carry no foreign key: a per-row referential check costs more than half of
-- ingest throughput, and ingestion already admits only device ids the caller may write.
-- Device removal (not offered yet) must delete or archive its readings itself.
ALTER TABLE readings DROP CONSTRAINT readings_device_id_fkey;
