"""The ClickHouse backend: events in one MergeTree table (a server over HTTP, or the embedded engine through chdb)."""
