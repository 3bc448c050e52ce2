"""Options shared by several commands, each with its environment variable."""

from __future__ import annotations

from typing import Annotated

import typer

from chat.passwords import PROFILES
from chat.server.config import DEFAULTS

DB_HELP = "SQLite file path, or an SQLAlchemy URL such as postgresql+psycopg://user@host/dbname."

Db = Annotated[str, typer.Option("--db", envvar="CHAT_DB", help=DB_HELP)]
Host = Annotated[str, typer.Option("--host", envvar="CHAT_HOST", help="Address of the server.")]
Port = Annotated[int, typer.Option("--port", envvar="CHAT_PORT", min=0, max=65535, help="TCP port.")]
PasswordProfile = Annotated[str, typer.Option(
    "--password-profile", envvar="CHAT_PASSWORD_PROFILE",
    help=f"argon2id parameters for new password hashes: {' or '.join(PROFILES)} (test: cheap, for test suites "
    "only).")]
DEFAULT_DB = DEFAULTS.db  # the server's defaults, defined once in ServerConfig; the client and admin use them too
DEFAULT_HOST = DEFAULTS.host
DEFAULT_PORT = DEFAULTS.port

__all__ = ["DEFAULT_DB", "DEFAULT_HOST", "DEFAULT_PORT", "Db", "Host", "PasswordProfile", "Port"]
