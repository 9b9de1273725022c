"""The default storage backend: one Tantivy index per organisation per UTC day; the only package importing tantivy."""
