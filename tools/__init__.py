"""Typed tools: pydantic argument and result models, their JSON schemas, the household scope."""
