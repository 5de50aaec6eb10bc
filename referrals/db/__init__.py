"""Persistence: SQLAlchemy 2 models, the engine and repositories.  Only flushes."""
