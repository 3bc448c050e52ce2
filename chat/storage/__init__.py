"""Persistence: SQLAlchemy models, engine setup, Alembic migrations and the message store."""
