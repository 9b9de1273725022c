"""Durable storage: write-ahead log, Tantivy day-partitions, the indexer process, retention."""
