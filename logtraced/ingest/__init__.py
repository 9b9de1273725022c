"""Receivers: framing, normalisation hand-off, sockets and the bounded ingest pipeline."""
