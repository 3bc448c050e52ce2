"""`chat client`: talk to a server, full-screen in a terminal, line by line in pipes and scripts."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from chat.cli.options import DEFAULT_HOST, DEFAULT_PORT, Host, Port


def client(
    host: Host = DEFAULT_HOST,
    port: Port = DEFAULT_PORT,
    nick: Annotated[str | None, typer.Option(envvar="CHAT_NICK", help="Your nickname (asked for if not given).")]
    = None,
    room: Annotated[str | None, typer.Option(help="Room to join after connecting.")] = None,
    plain: Annotated[bool, typer.Option("--plain", help="Line mode even in a terminal: read lines from "
                                                        "stdin, print events as text lines.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Line mode, printing the server's JSON events, one per "
                                                      "line (for tools).")] = False,
) -> None:
    """Connect to a chat server.

    In a terminal it is full screen: rooms and private conversations on the left, members on the right.
    Type to talk; /help lists the commands; Tab completes; PageUp reads back; Ctrl-N/Ctrl-P switch
    conversations; Ctrl-C, Ctrl-D or /quit leave. If the server goes away the client reconnects by itself.

    Not in a terminal (or with --plain) it reads lines from standard input, sends them, prints what
    arrives, and leaves once everything it sent was accepted, so it works in scripts and cron jobs:

        printf '/join dev\\nhello\\n' | chat client --nick bot

    Exit status in line mode: 0 all accepted; 1 no connection, nick refused or connection lost; 2 the
    server refused some lines.
    """
    full_screen = not (plain or json) and sys.stdin.isatty() and sys.stdout.isatty()
    if full_screen:
        try:
            from chat.client.tui.app import run_tui
        except ImportError as e:
            print(f"chat client: full-screen mode needs Textual ({e.name or e}); install it with "
                  "pip install 'chat-server[tui]'. Using line mode.", file=sys.stderr)
        else:
            raise typer.Exit(run_tui(host, port, nick, room))
    from chat.client.plain import run_plain

    raise typer.Exit(run_plain(host, port, nick, room, json=json))
