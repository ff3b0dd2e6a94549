"""Telemetry: schema, ingestion, energy integration, rollups, windows, aggregate queries."""
