"""Query languages (KQL, JSON pipeline), one AST, the compiler to Tantivy and the executor."""
