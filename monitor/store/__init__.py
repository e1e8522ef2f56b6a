"""Store stage: the SQL evidence record (models, sessions, hash chain, queries)."""
