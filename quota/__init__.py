"""Token quotas, spend cap and rate limits (Redis, with an in-memory twin for local runs)."""
