"""End-to-end tests of the HTTP API against the real daemon: ingest, auth, rate limits, health, usage, keys, tokens."""
