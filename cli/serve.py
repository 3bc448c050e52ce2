"""`chat serve`: run the server."""

from __future__ import annotations

import errno
import logging
import sys
from enum import StrEnum
from typing import Annotated

import typer

from chat.cli.options import DEFAULT_DB, DEFAULT_HOST, DEFAULT_PORT, Db, Port
from chat.server.config import LOOPBACK_NETWORKS


class LogFormat(StrEnum):
    text = "text"
    json = "json"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


def serve(
    db: Db = DEFAULT_DB,
    host: Annotated[str, typer.Option("--host", envvar="CHAT_HOST",
                                      help="Address to listen on. 0.0.0.0 (or ::) opens the server to your LAN.")]
    = DEFAULT_HOST,
    port: Port = DEFAULT_PORT,
    backlog: Annotated[int, typer.Option(min=0, help="Recent messages sent to a newcomer to a room.")] = 50,
    lobby: Annotated[str, typer.Option(help="Room everyone joins once named ('' for none).")] = "lobby",
    max_line: Annotated[int, typer.Option(min=64, help="Longest line a client may send, in bytes.")] = 4096,
    sendq: Annotated[int, typer.Option(help="Bytes waiting to be sent to a client before it is disconnected "
                                            "('send queue exceeded').")] = 1 << 20,
    rate: Annotated[float, typer.Option(min=0, help="Lines per second a client may send, sustained; faster "
                                                    "lines wait. 0 turns flood control off.")] = 5.0,
    burst: Annotated[int, typer.Option(min=1, help="Lines a client may send at once before being slowed.")] = 20,
    flood_limit: Annotated[int, typer.Option(min=1, help="Lines waiting for flood control before the client "
                                                         "is disconnected.")] = 100,
    nick_timeout: Annotated[float, typer.Option(min=1, help="Seconds a new client has to choose a nickname.")]
    = 60.0,
    max_clients: Annotated[int, typer.Option(min=1, help="Connections in total.")] = 10_000,
    max_per_ip: Annotated[int, typer.Option(min=1, help="Connections from one address.")] = 20,
    exempt: Annotated[list[str] | None, typer.Option(help="Network exempt from --max-per-ip (repeatable); "
                                                          f"default {', '.join(LOOPBACK_NETWORKS)}.")] = None,
    keepalive: Annotated[int, typer.Option(min=0, help="Seconds of silence before TCP keepalive probes; a "
                                                       "vanished peer is dropped about 2x later. 0: off.")] = 60,
    listen_backlog: Annotated[int, typer.Option(min=1, help="Connections the kernel queues before they are "
                                                            "accepted.")] = 4096,
    busy_timeout: Annotated[float, typer.Option(min=0, help="Seconds a write waits for a lock held by another "
                                                            "program (SQLite busy_timeout, PostgreSQL "
                                                            "lock_timeout) before the batch fails.")] = 5.0,
    log_level: Annotated[LogLevel, typer.Option(help="Least important log level shown.")] = LogLevel.info,
    log_format: Annotated[LogFormat, typer.Option(help="text, or json (one object per line).")] = LogFormat.text,
) -> None:
    """Run the chat server.

    The database is created or upgraded at start. Connect with `nc 127.0.0.1 33000` or `chat client`.
    SIGINT or SIGTERM stores everything already accepted, tells the clients, and exits 0.
    """
    from chat.logs import setup_logging
    from chat.server.app import ChatServer
    from chat.server.config import ServerConfig
    from chat.storage.database import resolve_url
    from chat.storage.lock import DatabaseInUse

    setup_logging(log_level.value, log_format.value)
    log = logging.getLogger("chat.server")
    try:
        config = ServerConfig(
            host=host, port=port, db=db, backlog=backlog, lobby=lobby or None, max_line=max_line, sendq=sendq,
            rate=rate, burst=burst, flood_limit=flood_limit, nick_timeout=nick_timeout, max_clients=max_clients,
            max_per_ip=max_per_ip, exempt=tuple(exempt) if exempt else LOOPBACK_NETWORKS, keepalive=keepalive,
            listen_backlog=listen_backlog, busy_timeout=busy_timeout,
        )
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    server = ChatServer(config)
    try:
        bound_host, bound_port = server.start()
    except DatabaseInUse as e:
        _fail(f"cannot start: {e}")
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            _fail(f"cannot listen on {host}:{port}: the address is in use (another server?); try --port")
        _fail(f"cannot start: {e}")
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(f"chat server listening on {shown}:{bound_port} (database {_safe(resolve_url(db))})", flush=True)
    server.install_signal_handlers()
    server.serve_forever()
    log.info("stopped")


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _fail(message: str) -> None:
    print(f"chat serve: {message}", file=sys.stderr)
    raise typer.Exit(1)
