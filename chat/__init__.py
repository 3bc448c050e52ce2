"""chat: a multi-room chat server you can talk to with `nc`, with history kept in SQLite or PostgreSQL."""

__version__ = "0.1.0"
