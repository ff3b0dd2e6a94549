-- A counter ingestion bumps whenever it stores a household's readings: cached figures are
-- keyed by it, so no cached answer outlives the data it was computed from.
ALTER TABLE households ADD COLUMN data_version bigint NOT NULL DEFAULT 0;
