"""Ingest Lambda: an upload arrived; probe it, validate it, plan its renditions, choose the engine, fan out."""
