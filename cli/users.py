"""`chat users`: list and manage accounts, safe while a server runs on the same database."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from chat.cli.admin import Format, OutputFormat, _fail, _print_lines
from chat.cli.options import DEFAULT_DB, Db, PasswordProfile
from chat.passwords import DEFAULT_PROFILE

users = typer.Typer(
    name="users",
    help="List and manage accounts (registered nicknames). Safe while the server runs on the same database: it "
    "reads an account afresh at each login, so changes take effect at the next one.",
    no_args_is_help=False,
    add_completion=False,
)

Nick = Annotated[str, typer.Argument(help="The account's nickname (any case).")]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin",
                                             help="Read the password from the first line of standard input "
                                                  "instead of asking (for scripts).")]


@users.callback(invoke_without_command=True)
def _default(ctx: typer.Context, db: Db = DEFAULT_DB, output: Format = OutputFormat.text) -> None:
    """Without a subcommand: list the accounts (as `chat users list`)."""
    if ctx.invoked_subcommand is None:
        list_(db, output)


@users.command("list")
def list_(db: Db = DEFAULT_DB, output: Format = OutputFormat.text) -> None:
    """List the accounts: nickname, when registered and last seen (UTC), and who is a server admin."""
    from chat.admin import AdminError, admin_errors, format_accounts, list_accounts, open_accounts

    try:
        engine = open_accounts(db)
        with admin_errors(db):
            accounts = list_accounts(engine)
    except AdminError as e:
        _fail("users", str(e))
    _print_lines(format_accounts(accounts, output.value))


@users.command("add")
def add(nick: Nick, db: Db = DEFAULT_DB, password_stdin: PasswordStdin = False,
        password_profile: PasswordProfile = DEFAULT_PROFILE) -> None:
    """Register NICK as an account; the password is asked for (twice, not echoed) unless --password-stdin."""
    from chat.admin import AdminError, add_account, admin_errors, open_accounts

    try:
        engine = open_accounts(db)
        password = _password(password_stdin)
        with admin_errors(db):
            add_account(engine, nick, password, password_profile)
    except AdminError as e:
        _fail("users add", str(e))
    print(f"{nick} is registered")


@users.command("passwd")
def passwd(nick: Nick, db: Db = DEFAULT_DB, password_stdin: PasswordStdin = False,
           password_profile: PasswordProfile = DEFAULT_PROFILE) -> None:
    """Give the account NICK a new password (a session logged in already carries on)."""
    from chat.admin import AdminError, admin_errors, change_password, open_accounts

    try:
        engine = open_accounts(db)
        password = _password(password_stdin)
        with admin_errors(db):
            change_password(engine, nick, password, password_profile)
    except AdminError as e:
        _fail("users passwd", str(e))
    print(f"the password of {nick} is changed")


@users.command("delete")
def delete(nick: Nick, db: Db = DEFAULT_DB) -> None:
    """Delete the account NICK.

    Its nickname is free again, the rooms it owned have no owner, the private messages waiting for it are
    dropped, and nobody can read its private conversations (not even whoever registers NICK next). A session
    logged in to it carries on until it logs out or leaves.
    """
    from chat.admin import AdminError, admin_errors, delete_account, open_accounts

    try:
        engine = open_accounts(db)
        with admin_errors(db):
            delete_account(engine, nick)
    except AdminError as e:
        _fail("users delete", str(e))
    print(f"the account {nick} is deleted")


@users.command("admin")
def admin(nick: Nick, db: Db = DEFAULT_DB,
          revoke: Annotated[bool, typer.Option("--revoke", help="Take the admin flag away instead.")] = False) -> None:
    """Make NICK a server admin, who may moderate every room (from its next login); --revoke undoes it."""
    from chat.admin import AdminError, admin_errors, open_accounts, set_admin

    try:
        engine = open_accounts(db)
        with admin_errors(db):
            set_admin(engine, nick, not revoke)
    except AdminError as e:
        _fail("users admin", str(e))
    print(f"{nick} is {'no longer ' if revoke else ''}a server admin")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password
