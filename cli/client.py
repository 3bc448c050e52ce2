"""`chat client`: talk to a server."""

from __future__ import annotations

from typing import Annotated

import typer

from chat.cli.options import DEFAULT_HOST, DEFAULT_PORT, Host, Port


def client(
    host: Host = DEFAULT_HOST,
    port: Port = DEFAULT_PORT,
    nick: Annotated[str | None, typer.Option(envvar="CHAT_NICK", help="Your nickname (asked for if not given).")]
    = None,
    room: Annotated[str | None, typer.Option(help="Room to join after connecting.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the server's JSON events, one per line.")] = False,
) -> None:
    """Connect to a chat server: what arrives is printed while you type; /quit or Ctrl-D leaves.

    Reads lines from standard input, so it also works in scripts:
    printf '/join dev\\nhello\\n' | chat client --nick bot
    """
    from chat.client.plain import run_plain

    raise typer.Exit(run_plain(host, port, nick, room, json=json))
