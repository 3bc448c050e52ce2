"""The `chat` command: every subcommand is wired here, in one visible place."""

from __future__ import annotations

import typer

from chat import __version__
from chat.cli.admin import history, index, rooms
from chat.cli.bench import bench
from chat.cli.client import client
from chat.cli.serve import serve
from chat.cli.users import users

app = typer.Typer(
    name="chat",
    help="A multi-room chat server you can talk to with nc, with history kept in SQLite or PostgreSQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(serve)
app.command()(client)
app.command()(history)
app.command()(rooms)
app.command()(index)
app.command()(bench)
app.add_typer(users)


def _version(value: bool) -> None:
    if value:
        print(f"chat {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    pass


def main() -> None:
    app()
