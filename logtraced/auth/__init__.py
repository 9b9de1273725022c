"""API keys, access tokens, rate limits and usage accounting, kept in SQLite."""
