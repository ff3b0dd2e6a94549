-- Hourly and daily rollups (UTC-aligned), summed from the 15-minute buckets by the refresher.
-- A window read takes whole UTC days from rollup_1d, whole hours at its ends from rollup_1h,
-- and quarter hours at its very edges from rollup_15m: a 30-day window of a device is about
-- 80 rows instead of 2,880. Local days that are not UTC days decompose the same way.

CREATE TABLE rollup_1h (
    device_id   uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    bucket      timestamptz NOT NULL,
    wh_pos      double precision NOT NULL,
    wh_neg      double precision NOT NULL,
    capped_gaps integer NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, bucket)
);

CREATE TABLE rollup_1d (
    device_id   uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    bucket      timestamptz NOT NULL,
    wh_pos      double precision NOT NULL,
    wh_neg      double precision NOT NULL,
    capped_gaps integer NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, bucket)
);
