"""The turn pipeline, LLM providers, the action and consent protocol, the HTTP/SSE app and CLI."""
