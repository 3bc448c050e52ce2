"""`chat history` and `chat rooms`: admin queries on a database, safe while a server runs on it."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer

from chat.cli.options import DEFAULT_DB, Db

MESSAGES_MAX = 2**63 - 1  # a LIMIT the databases take (64-bit); more than any room holds


class OutputFormat(StrEnum):
    text = "text"
    json = "json"
    csv = "csv"


Format = Annotated[OutputFormat, typer.Option("--format", help="text, json (one object per line) or csv.")]


def history(
    room: Annotated[str, typer.Option("--room", help="Room to show (the # is optional).")],
    db: Db = DEFAULT_DB,
    limit: Annotated[int | None, typer.Option(min=1, max=MESSAGES_MAX,
                                              help="Only the newest N messages (still oldest first).")] = None,
    since: Annotated[str | None, typer.Option(help="From this ISO date or time (UTC unless it says).")] = None,
    until: Annotated[str | None, typer.Option(help="Up to this ISO date or time (a date: its whole day).")] = None,
    user: Annotated[str | None, typer.Option(help="Only messages sent by this nick.")] = None,
    grep: Annotated[str | None, typer.Option(help="Only messages containing this text (any case).")] = None,
    output: Format = OutputFormat.text,
) -> None:
    """Print a room's messages in time order, with time (UTC) and sender."""
    from chat.admin import AdminError, admin_errors, format_messages, open_database, parse_when, room_history

    try:
        engine = open_database(db)
        with admin_errors(db):
            messages = room_history(
                engine, room, limit=limit, since=parse_when(since) if since else None,
                until=parse_when(until, end=True) if until else None, user=user, grep=grep,
            )
    except AdminError as e:
        _fail("history", str(e))
    _print_lines(format_messages(messages, output.value))


def rooms(db: Db = DEFAULT_DB, output: Format = OutputFormat.text) -> None:
    """List every room with its topic, message count and last activity."""
    from chat.admin import AdminError, admin_errors, format_rooms, open_database, room_stats

    try:
        engine = open_database(db)
        with admin_errors(db):
            stats = room_stats(engine)
    except AdminError as e:
        _fail("rooms", str(e))
    _print_lines(format_rooms(stats, output.value))


def _print_lines(lines: object) -> None:
    write = sys.stdout.write
    try:
        for line in lines:  # type: ignore[attr-defined]
            write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `chat history ... | head` is fine
        sys.stderr.close()


def _fail(command: str, message: str) -> None:
    print(f"chat {command}: {message}", file=sys.stderr)
    raise typer.Exit(1)
