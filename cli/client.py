"""`chat client`: talk to a server, full-screen in a terminal, line by line in pipes and scripts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from chat.cli.options import DEFAULT_HOST, DEFAULT_PORT
from chat.client.config import ConfigError, default_path, load_config


def client(
    host: Annotated[str | None, typer.Option("--host", envvar="CHAT_HOST", show_default=DEFAULT_HOST,
                                             help="Address of the server.")] = None,
    port: Annotated[int | None, typer.Option("--port", envvar="CHAT_PORT", min=1, max=65535,
                                             show_default=str(DEFAULT_PORT), help="TCP port.")] = None,
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

    The settings file (server, nick, bell, notifications, ignored nicks) is described in docs/CLIENT.md;
    options and CHAT_* variables win over it.
    """
    try:
        settings = load_config(config or default_path())
    except ConfigError as e:
        print(f"chat client: {e}", file=sys.stderr)
        raise typer.Exit(1) from None
    host = host or settings.host or DEFAULT_HOST
    port = port or settings.port or DEFAULT_PORT
    nick = nick or settings.nick
    full_screen = not (plain or json) and sys.stdin.isatty() and sys.stdout.isatty()
    if full_screen:
        try:
            from chat.client.tui.app import run_tui
        except ImportError as e:
            print(f"chat client: full-screen mode needs Textual ({e.name or e}), which is installed with chat; "
                  "reinstall chat from its folder (pip install .). Using line mode.", file=sys.stderr)
        else:
            raise typer.Exit(run_tui(host, port, nick, room, settings))
    from chat.client.plain import run_plain

    raise typer.Exit(run_plain(host, port, nick, room, json=json, backlog=not no_backlog))
