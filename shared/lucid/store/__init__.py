"""Storage plumbing shared by every domain: the process's MongoDB database and Redis client,
the indexes, document helpers (ids, timestamps, safe JSON, driver errors), keyset pagination,
and the dependency checks behind GET /meta/health."""
