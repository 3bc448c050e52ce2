"""`chat history`, `chat rooms` and `chat index`: admin commands on a database, safe while a server runs on it."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, NoReturn

import typer

from chat.cli.options import DEFAULT_DB, Db

MESSAGES_MAX = 2**63 - 1  # a LIMIT the databases take (64-bit); more than any room holds


class OutputFormat(StrEnum):
    text = "text"
    json = "json"
    csv = "csv"


Format = Annotated[OutputFormat, typer.Option("--format", help="text, json (one object per line) or csv.")]


def history(
    room: Annotated[str | None, typer.Option("--room", help="Room to show (the # is optional). With --search: "
                                                            "only this room, like in:#ROOM.")] = None,
    search: Annotated[str | None, typer.Option(
        "--search", help="Search every room and private message, newest first: words, \"exact phrase\", -word, "
                         "in:#room, from:nick, after:DATE, before:DATE (the syntax of /search).")] = None,
    db: Db = DEFAULT_DB,
    limit: Annotated[int | None, typer.Option(min=1, max=MESSAGES_MAX, help="Only the newest N messages (still "
                                                                            "oldest first; with --search, the "
                                                                            "newest N matches).")] = None,
    since: Annotated[str | None, typer.Option(help="From this ISO date or time (UTC unless it says).")] = None,
    until: Annotated[str | None, typer.Option(help="Up to this ISO date or time (a date: its whole day).")] = None,
    user: Annotated[str | None, typer.Option(help="Only messages sent by this nick.")] = None,
    grep: Annotated[str | None, typer.Option(help="Only messages containing this text (any case).")] = None,
    timeout: Annotated[float, typer.Option(min=0.001, help="With --search: seconds each page of results may "
                                                           "take before the search stops.")] = 30.0,
    output: Format = OutputFormat.text,
) -> None:
    """Print a room's messages in time order, with time (UTC) and sender; or search them all with --search."""
    from chat.admin import AdminError, admin_errors, format_messages, open_database, parse_when, room_history

    if search is not None:
        mixed = [name for name, value in (("--since", since), ("--until", until), ("--user", user),
                                          ("--grep", grep)) if value is not None]
        if mixed:
            _fail("history", f"{', '.join(mixed)} and --search do not mix: say it in the query "
                             "(after:DATE, before:DATE, from:NICK, words)")
        _search(db, search, room, limit, timeout, output)
        return
    if room is None:
        _fail("history", "say which room: --room ROOM (or search them all: --search QUERY)")
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


def _search(db: str, query: str, room: str | None, limit: int | None, timeout: float, output: OutputFormat) -> None:
    from chat.admin import AdminError, admin_errors, format_found, open_database, search_history

    try:
        engine = open_database(db)
        with admin_errors(db):  # the pages are read as they are printed
            run = search_history(engine, query, room=room, limit=limit, budget=timeout)
            if run.unindexed_below is not None:
                print(f"chat history: messages with ids below {run.unindexed_below} are not indexed yet, so not "
                      "searched: run chat index", file=sys.stderr)
            _print_lines(format_found(run.messages, output.value))
    except AdminError as e:
        _fail("history", str(e))


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


def index(
    db: Db = DEFAULT_DB,
    batch: Annotated[int, typer.Option(min=1, max=100_000, help="Messages indexed per transaction.")] = 1000,
    pause: Annotated[float, typer.Option(min=0, help="Seconds between two batches, which leave the database to "
                                                     "a running server's writes.")] = 0.01,
) -> None:
    """Index for search the messages stored before the search index existed (newest first, in batches).

    chat serve gives an older database an empty index: new messages are searchable at once, older ones once indexed.

    Safe while the server runs, and to stop and run again: each batch is one transaction. Progress is logged every 5 s.
    """
    from chat.admin import AdminError, admin_errors, index_database, open_database
    from chat.logs import setup_logging

    setup_logging("info")
    try:
        engine = open_database(db)
        with admin_errors(db):
            done = index_database(engine, batch=batch, pause=pause)
    except AdminError as e:
        _fail("index", str(e))
    print("search index complete" + (f": {done} messages indexed" if done else " (nothing to do)"))


def _print_lines(lines: object) -> None:
    write = sys.stdout.write
    try:
        for line in lines:  # type: ignore[attr-defined]
            write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `chat history ... | head` is fine
        sys.stderr.close()


def _fail(command: str, message: str) -> NoReturn:
    print(f"chat {command}: {message}", file=sys.stderr)
    raise typer.Exit(1)
