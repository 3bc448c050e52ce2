"""Alembic migrations, installed as `chat.migrations` so that `chat serve` can upgrade a database anywhere."""
