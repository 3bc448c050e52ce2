"""`chat serve`: run the server."""

from __future__ import annotations

import errno
import logging
import sys
from enum import StrEnum
from typing import Annotated, NoReturn

import typer

from chat.cli.options import DEFAULT_DB, DEFAULT_HOST, DEFAULT_PORT, Db, PasswordProfile, Port
from chat.server.config import DEFAULTS


class LogFormat(StrEnum):
    text = "text"
    json = "json"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


# Every default below is ServerConfig's (DEFAULTS): it is defined there once.
def serve(
    db: Db = DEFAULT_DB,
    host: Annotated[str, typer.Option("--host", envvar="CHAT_HOST",
                                      help="Address to listen on. 0.0.0.0 (or ::) opens the server to your LAN.")]
    = DEFAULT_HOST,
    port: Port = DEFAULT_PORT,
    backlog: Annotated[int, typer.Option(min=0, help="Recent messages sent to a newcomer to a room.")]
    = DEFAULTS.backlog,
    lobby: Annotated[str, typer.Option(help="Room everyone joins once named ('' for none).")] = DEFAULTS.lobby or "",
    max_line: Annotated[int, typer.Option(min=64, help="Longest line a client may send, in bytes.")]
    = DEFAULTS.max_line,
    sendq: Annotated[int, typer.Option(help="Bytes waiting to be sent to a client before it is disconnected "
                                            "('send queue exceeded').")] = DEFAULTS.sendq,
    rate: Annotated[float, typer.Option(min=0, help="Lines per second a client may send, sustained; faster "
                                                    "lines wait. 0 turns flood control off.")] = DEFAULTS.rate,
    burst: Annotated[int, typer.Option(min=1, help="Lines a client may send at once before being slowed.")]
    = DEFAULTS.burst,
    flood_limit: Annotated[int, typer.Option(min=1, help="Lines waiting for flood control before the client "
                                                         "is disconnected.")] = DEFAULTS.flood_limit,
    nick_timeout: Annotated[float, typer.Option(min=1, help="Seconds a new client has to choose a nickname.")]
    = DEFAULTS.nick_timeout,
    max_clients: Annotated[int, typer.Option(min=1, help="Connections in total.")] = DEFAULTS.max_clients,
    max_per_ip: Annotated[int, typer.Option(min=1, help="Connections from one address (IPv6: from one /64).")]
    = DEFAULTS.max_per_ip,
    max_rooms_per_client: Annotated[int, typer.Option(min=1, help="Rooms one client may be in at once.")]
    = DEFAULTS.max_rooms_per_client,
    quiet_above: Annotated[int, typer.Option(min=0, help="In a room of more than this many members, joins, leaves and "
                                                         "quits are not announced (0: always).")]
    = DEFAULTS.quiet_above,
    new_rooms_per_minute: Annotated[float, typer.Option(min=0, help="New rooms one client may create a minute, "
                                                                    "sustained.")] = DEFAULTS.new_rooms_per_minute,
    new_rooms_burst: Annotated[int, typer.Option(min=1, help="New rooms one client may create at once.")]
    = DEFAULTS.new_rooms_burst,
    exempt: Annotated[list[str] | None, typer.Option(help="Network exempt from --max-per-ip (repeatable); "
                                                          f"default {', '.join(DEFAULTS.exempt)}.")] = None,
    keepalive: Annotated[int, typer.Option(min=0, help="Seconds of silence before TCP keepalive probes; a "
                                                       "vanished peer is dropped about 2x later. 0: off.")]
    = DEFAULTS.keepalive,
    ping_timeout: Annotated[float, typer.Option(min=0, help="Seconds an IRC client may be silent before it is sent "
                                                            "PING; silent as long again, it is closed (Ping "
                                                            "timeout). 0: never.")] = DEFAULTS.ping_timeout,
    listen_backlog: Annotated[int, typer.Option(min=1, help="Connections the kernel queues before they are "
                                                            "accepted.")] = DEFAULTS.listen_backlog,
    busy_timeout: Annotated[float, typer.Option(min=0, help="Seconds a write waits for a lock held by another "
                                                            "program (SQLite busy_timeout, PostgreSQL "
                                                            "lock_timeout) before the batch fails.")]
    = DEFAULTS.busy_timeout,
    web_port: Annotated[int | None, typer.Option(min=0, max=65535, envvar="CHAT_WEB_PORT",
                                                 help="Serve the web client on this port (http://HOST:PORT/, "
                                                      "its WebSocket at /ws). Off by default.")]
    = DEFAULTS.web_port,
    https_port: Annotated[int | None, typer.Option(min=0, max=65535, envvar="CHAT_HTTPS_PORT",
                                                   help="Serve the web client over TLS on this port "
                                                        "(https://HOST:PORT/, wss:// at /ws), with the "
                                                        "--tls-cert certificate. Off by default.")]
    = DEFAULTS.https_port,
    web_origin: Annotated[list[str] | None, typer.Option(help="An origin whose pages may use the web client's "
                                                             "WebSocket besides the server's own page "
                                                             "(repeatable; * for any). See docs/WEB.md.")] = None,
    password_profile: PasswordProfile = DEFAULTS.password_profile,
    password_threads: Annotated[int, typer.Option(min=1, help="Threads hashing and checking passwords (each "
                                                              "check takes 64 MiB while it runs).")]
    = DEFAULTS.password_threads,
    password_queue: Annotated[int, typer.Option(min=0, help="Password checks that may wait for a thread; more are "
                                                            "refused with server_busy.")] = DEFAULTS.password_queue,
    login_burst: Annotated[int, typer.Option(min=1, help="Failed logins allowed at once, per account and per "
                                                         "address.")] = DEFAULTS.login_burst,
    login_per_minute: Annotated[float, typer.Option(min=0, help="Failed logins allowed a minute, sustained, per "
                                                                "account and per address.")]
    = DEFAULTS.login_per_minute,
    register_burst: Annotated[int, typer.Option(min=1, help="Accounts one address may register at once (exempt "
                                                            "networks: any number).")] = DEFAULTS.register_burst,
    register_per_minute: Annotated[float, typer.Option(min=0, help="Accounts one address may register a minute, "
                                                                   "sustained.")] = DEFAULTS.register_per_minute,
    throttle_keys: Annotated[int, typer.Option(min=1, help="Accounts and addresses each login limiter "
                                                           "remembers at most.")] = DEFAULTS.throttle_keys,
    offline_max: Annotated[int, typer.Option(min=0, help="Private messages that may wait for one offline "
                                                         "account.")] = DEFAULTS.offline_max,
    index_when_idle: Annotated[float, typer.Option(min=0, help="Seconds with nothing to write before the server "
                                                              "indexes messages older than the search index, a "
                                                              "short batch at a time (0: never; `chat index` "
                                                              "does it).")] = DEFAULTS.index_when_idle,
    search_budget: Annotated[float, typer.Option(min=0.001, help="Seconds one /search page may take; past it the "
                                                                 "search is refused (search_timeout), asking to "
                                                                 "narrow it.")] = DEFAULTS.search_budget,
    tls_cert: Annotated[str | None, typer.Option("--tls-cert", envvar="CHAT_TLS_CERT", show_default=False,
                                                 help="PEM certificate chain (certbot: fullchain.pem). With "
                                                      "--tls-key, turns TLS on. SIGHUP reads both again.")] = None,
    tls_key: Annotated[str | None, typer.Option("--tls-key", envvar="CHAT_TLS_KEY", show_default=False,
                                                help="PEM private key, unencrypted (certbot: privkey.pem).")] = None,
    tls_port: Annotated[int, typer.Option("--tls-port", envvar="CHAT_TLS_PORT", min=0, max=65535,
                                          help="TCP port of the native protocol over TLS (0: any free port).")]
    = DEFAULTS.tls_port,
    no_plain: Annotated[bool, typer.Option("--no-plain", help="Serve TLS only: no plain-text listener on --port.")]
    = False,
    tls_handshake_timeout: Annotated[float, typer.Option(min=1, help="Seconds a new TLS connection has to "
                                                                     "finish its handshake.")]
    = DEFAULTS.tls_handshake_timeout,
    irc_port: Annotated[int | None, typer.Option("--irc-port", envvar="CHAT_IRC_PORT", min=0, max=65535,
                                                 show_default=False,
                                                 help="TCP port of the IRC door (6667 is IRC's; 0: any free port). "
                                                      "Off unless given.")] = DEFAULTS.irc_port,
    ircs_port: Annotated[int | None, typer.Option("--ircs-port", envvar="CHAT_IRCS_PORT", min=0, max=65535,
                                                  show_default=False,
                                                  help="TCP port of the IRC door over TLS (6697 is IRC's; needs "
                                                       "--tls-cert). Off unless given.")] = DEFAULTS.ircs_port,
    server_name: Annotated[str, typer.Option(help="The server's name: in its greeting, and IRC's message "
                                                  "source.")] = DEFAULTS.server_name,
    cluster: Annotated[bool, typer.Option("--cluster", help="Serve one chat with other nodes on the same "
                                                            "PostgreSQL database (docs/CLUSTER.md).")] = False,
    node: Annotated[str | None, typer.Option(help="This node's name in the cluster (default: the host name and "
                                                  "the port).", show_default=False)] = DEFAULTS.node,
    node_timeout: Annotated[float, typer.Option(min=3, help="Seconds without a heartbeat before a node's users "
                                                            "are announced gone.")] = DEFAULTS.node_timeout,
    events_kept: Annotated[float, typer.Option(min=1, help="Seconds room events are kept at least before they are "
                                                           "pruned (clustered; keep it well above --node-timeout).")
                           ] = DEFAULTS.events_kept,
    log_level: Annotated[LogLevel, typer.Option(help="Least important log level shown.")] = LogLevel.info,
    log_format: Annotated[LogFormat, typer.Option(help="text, or json (one object per line).")] = LogFormat.text,
) -> None:
    """Run the chat server.

    The database is created or upgraded at start. Connect with `nc 127.0.0.1 33000` or `chat client`, or
    with a browser when --web-port (or --https-port) is given.
    SIGINT or SIGTERM stores everything already accepted, tells the clients, and exits 0.
    A bad option is one line and exit status 2; a database, address or lock that cannot be used, exit status 1.

    TLS: `--tls-cert fullchain.pem --tls-key privkey.pem` adds the native protocol over TLS on --tls-port
    (33443), beside plain --port (--no-plain: TLS only); --https-port serves the web client over TLS too.
    SIGHUP reloads the certificate and key; connections stay. A certificate or key that cannot be used is one
    line and exit status 2.
    """
    from chat.logs import setup_logging
    from chat.server.app import ChatServer
    from chat.server.config import ServerConfig
    from chat.server.tls import TLSSetupError
    from chat.storage.database import DatabaseUnusable, shown_url
    from chat.storage.lock import DatabaseInUse

    setup_logging(log_level.value, log_format.value)
    log = logging.getLogger("chat.server")
    try:
        config = ServerConfig(
            host=host, port=port, db=db, backlog=backlog, lobby=lobby or None, max_line=max_line, sendq=sendq,
            rate=rate, burst=burst, flood_limit=flood_limit, nick_timeout=nick_timeout, max_clients=max_clients,
            max_per_ip=max_per_ip, max_rooms_per_client=max_rooms_per_client, quiet_above=quiet_above,
            new_rooms_per_minute=new_rooms_per_minute, new_rooms_burst=new_rooms_burst,
            exempt=tuple(exempt) if exempt else DEFAULTS.exempt, keepalive=keepalive, ping_timeout=ping_timeout,
            listen_backlog=listen_backlog,
            busy_timeout=busy_timeout, web_port=web_port, https_port=https_port,
            web_origins=tuple(web_origin or ()),
            password_profile=password_profile, password_threads=password_threads,
            password_queue=password_queue, login_burst=login_burst, login_per_minute=login_per_minute,
            register_burst=register_burst, register_per_minute=register_per_minute, throttle_keys=throttle_keys,
            offline_max=offline_max, index_when_idle=index_when_idle, search_budget=search_budget,
            tls_cert=tls_cert,
            tls_key=tls_key, tls_port=tls_port, plain=not no_plain, tls_handshake_timeout=tls_handshake_timeout,
            irc_port=irc_port, ircs_port=ircs_port, server_name=server_name,
            cluster=cluster, node=node, node_timeout=node_timeout, events_kept=events_kept,
        )
    except ValueError as e:
        _fail(str(e), status=2)
    server = ChatServer(config)
    try:
        server.start()
    except TLSSetupError as e:
        _fail(str(e), status=2)
    except DatabaseUnusable as e:
        _fail(str(e))
    except DatabaseInUse as e:
        _fail(f"cannot start: {e}")
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            ports = "/".join(str(p) for p, on in ((port, not no_plain), (tls_port, tls_cert is not None),
                                                  (web_port, web_port is not None),
                                                  (https_port, https_port is not None)) if on)
            _fail(f"cannot listen on {host}:{ports}: the address is in use (another server?); try --port, "
                  "--tls-port, --web-port or --https-port")
        _fail(f"cannot start: {e}")
    # before the line that says it is up: whoever waits for that line may send a signal at once
    server.install_signal_handlers()
    print(f"chat server listening on {_doors(server.doors)} (database {shown_url(db)})", flush=True)
    for scheme, address in (("http", server.web_address), ("https", server.https_address)):
        if address is not None:
            web_host, web_port_bound = address
            shown = f"[{web_host}]" if ":" in web_host else web_host
            print(f"web client on {scheme}://{shown}:{web_port_bound}/", flush=True)
    server.serve_forever()
    log.info("stopped")


DOOR_LABELS = {"native": "plain", "native-tls": "TLS", "irc": "IRC", "irc-tls": "IRC over TLS"}


def _doors(doors: list[tuple[str, tuple[str, int]]]) -> str:
    """`127.0.0.1:33000` for the plain door alone, else each with its label: `127.0.0.1:33000 (plain) and
    127.0.0.1:33443 (TLS)`."""
    def shown(host: str, port: int) -> str:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    doors = [(name, address) for name, address in doors if name in DOOR_LABELS]  # the web client has its own line
    if len(doors) == 1 and doors[0][0] == "native":
        return shown(*doors[0][1])
    return " and ".join(f"{shown(*address)} ({DOOR_LABELS[name]})" for name, address in doors)


def _fail(message: str, status: int = 1) -> NoReturn:
    print(f"chat serve: {message}", file=sys.stderr)
    raise typer.Exit(status)
