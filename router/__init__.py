"""Deterministic intent routing and entity extraction."""
