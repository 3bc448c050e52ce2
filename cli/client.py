"""`chat client`: talk to a server, full-screen in a terminal, line by line in pipes and scripts."""

from __future__ import annotations

import dataclasses
import getpass
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from chat.cli.options import DEFAULT_HOST, DEFAULT_PORT
from chat.client.config import ConfigError, default_path, load_config, resolve_tls
from chat.server.config import DEFAULT_TLS_PORT

INSECURE_WARNING = (
    "chat client: WARNING: {source}: the server's TLS certificate is NOT checked (neither who issued it nor "
    "which name it is for). The connection is encrypted, but anyone between you and the server can pretend to be "
    "it and read and change everything, passwords included. Use it for a test server only; --ca FILE trusts a "
    "self-signed certificate safely."
)


def client(
    host: Annotated[str | None, typer.Option("--host", envvar="CHAT_HOST", show_default=DEFAULT_HOST,
                                             help="Address of the server.")] = None,
    port: Annotated[int | None, typer.Option("--port", envvar="CHAT_PORT", min=1, max=65535,
                                             show_default=f"{DEFAULT_PORT}, or {DEFAULT_TLS_PORT} with --tls",
                                             help="TCP port.")] = None,
    nick: Annotated[str | None, typer.Option(envvar="CHAT_NICK", help="Your nickname (asked for if not given).")]
    = None,
    room: Annotated[str | None, typer.Option(help="Room to join after connecting.")] = None,
    plain: Annotated[bool, typer.Option("--plain", help="Line mode even in a terminal: read lines from "
                                                        "stdin, print events as text lines.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Line mode, printing the server's JSON events, one per "
                                                      "line (for tools).")] = False,
    no_backlog: Annotated[bool, typer.Option("--no-backlog", help="Line mode: leave out the recent history "
                                                                  "a room sends on joining.")] = False,
    config: Annotated[Path | None, typer.Option("--config", dir_okay=False, show_default=False,
                                                help="Settings file (default: $XDG_CONFIG_HOME/chat/client.toml, "
                                                     "or ~/.config/chat/client.toml).")] = None,
    password_file: Annotated[Path | None, typer.Option("--password-file", envvar="CHAT_PASSWORD_FILE",
                                                       dir_okay=False, show_default=False,
                                                       help="Log in to the account --nick with the password on "
                                                            "this file's first line.")] = None,
    ask_password: Annotated[bool, typer.Option("--ask-password", help="Log in to the account --nick: ask for "
                                                                      "its password first (not echoed).")] = False,
    tls: Annotated[bool | None, typer.Option("--tls/--no-tls", envvar="CHAT_TLS", show_default=False,
                                             help="Connect with TLS, checking the server's certificate (system "
                                                  "CAs, or --ca); --no-tls: without, whatever the settings file "
                                                  "says.")] = None,
    ca: Annotated[str | None, typer.Option("--ca", envvar="CHAT_CA", show_default=False,
                                           help="PEM file of the CA(s) to trust instead of the system's (a "
                                                "self-signed server's certificate itself). Implies --tls.")]
    = None,
    insecure: Annotated[bool | None, typer.Option("--insecure/--no-insecure", show_default=False,
                                                  help="TLS without checking the certificate at all (tests only; "
                                                       "says so on stderr). Implies --tls.")] = None,
) -> None:
    """Connect to a chat server.

    In a terminal it is full screen: rooms and private conversations on the left, members on the right.
    Type to talk; /help lists the commands; Tab completes; PageUp reads back, End jumps down, Ctrl-R
    searches; Ctrl-N/Ctrl-P or Alt-1…9 switch conversations; Ctrl-C, Ctrl-D or /quit leave. If the server
    goes away the client reconnects by itself. A mention or a private message rings the terminal's bell.

    Not in a terminal (or with --plain) it reads lines from standard input, sends them, prints what
    arrives, and leaves once everything it sent was accepted, so it works in scripts and cron jobs:

        printf '/join dev\\nhello\\n' | chat client --nick bot --no-backlog

    Exit status in line mode: 0 all accepted; 1 no connection, nick refused or connection lost; 2 the
    server refused some lines.

    The settings file (server, nick, TLS, bell, notifications, ignored nicks) is described in docs/CLIENT.md;
    options and CHAT_* variables win over it.

    TLS: `chat client --tls --host chat.example.org` (port 33443); a self-signed server: `--ca its-cert.pem`.
    """
    from chat.client.connection import tls_context

    try:
        settings = load_config(config or default_path())
    except ConfigError as e:
        print(f"chat client: {e}", file=sys.stderr)
        raise typer.Exit(1) from None
    if ca is not None and insecure:
        raise typer.BadParameter("--ca and --insecure contradict each other: --ca checks the certificate")
    chosen = resolve_tls(settings, tls, ca, insecure)
    settings = dataclasses.replace(settings, tls=chosen.on, ca=chosen.ca, insecure=chosen.insecure)  # in force
    context = None
    if chosen.on:
        try:
            context = tls_context(chosen.ca, chosen.insecure)
        except (OSError, ValueError) as e:
            if ca is not None:
                raise typer.BadParameter(f"cannot use the CA file {ca}: {e}", param_hint="--ca") from None
            print(f"chat client: {settings.path}: cannot use the CA file {chosen.ca}: {e}", file=sys.stderr)
            raise typer.Exit(1) from None
        if chosen.insecure:
            print(INSECURE_WARNING.format(source=chosen.source), file=sys.stderr)
    host = host or settings.host or DEFAULT_HOST
    port = port or settings.port or (DEFAULT_TLS_PORT if context is not None else DEFAULT_PORT)
    nick = nick or settings.nick
    password = _password(nick, password_file, ask_password)
    full_screen = not (plain or json) and sys.stdin.isatty() and sys.stdout.isatty()
    if full_screen:
        try:
            from chat.client.tui.app import run_tui
        except ImportError as e:
            print(f"chat client: full-screen mode needs Textual ({e.name or e}), which is installed with chat; "
                  "reinstall chat from its folder (pip install .). Using line mode.", file=sys.stderr)
        else:
            raise typer.Exit(run_tui(host, port, nick, room, settings, password=password, tls=context))
    from chat.client.plain import run_plain

    raise typer.Exit(run_plain(host, port, nick, room, json=json, backlog=not no_backlog, password=password,
                               tls=context))


def _password(nick: str | None, path: Path | None, ask: bool) -> str | None:
    """The password to log in with: the first line of `path`, or typed at a prompt that does not echo."""
    if path is None and not ask:
        return None
    if nick is None:
        _fail("--password-file and --ask-password log in to an account: give its nick with --nick")
    if path is not None:
        try:
            with path.open(encoding="utf-8") as f:
                line = f.readline()
        except (OSError, UnicodeDecodeError) as e:
            _fail(f"cannot read the password file {path}: {getattr(e, 'strerror', None) or e}")
        password = line.rstrip("\r\n")
        if not password:
            _fail(f"the password file {path} is empty")
        return password
    try:
        return getpass.getpass(f"Password for {nick}: ")
    except (EOFError, KeyboardInterrupt):
        _fail("no password given")


def _fail(message: str) -> NoReturn:
    print(f"chat client: {message}", file=sys.stderr)
    raise typer.Exit(1)
