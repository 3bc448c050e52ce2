"""`chat users` as real processes, beside a running server on the same database: list, add (from a prompt that
does not echo, or --password-stdin), passwd, admin, delete, and the errors."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from collections.abc import Callable

from harness import WAIT, ServerThread, chat_command

PASSWORD = "correct horse battery"


def users(db: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*chat_command(), "users", *args, "--db", db, *(
        ["--password-profile", "test"] if args and args[0] in ("add", "passwd") else [])],
        input=stdin, capture_output=True, text=True, timeout=60)


def test_users_beside_a_running_server(make_server: Callable[..., ServerThread], sqlite_db: str) -> None:
    server = make_server()
    assert users(sqlite_db).stdout.strip() == "no accounts yet (chat users add NICK, or /register in the chat)"
    added = users(sqlite_db, "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    alice = server.client()
    alice.login("alice", PASSWORD)  # the server reads the account afresh: no restart
    again = users(sqlite_db, "add", "ALICE", "--password-stdin", stdin=PASSWORD + "\n")
    assert again.returncode == 1 and again.stderr == "chat users add: ALICE is registered already\n"
    weak = users(sqlite_db, "add", "bob", "--password-stdin", stdin="short\n")
    assert weak.returncode == 1 and "at least 8 characters" in weak.stderr
    assert users(sqlite_db, "add", "Guest12", "--password-stdin", stdin=PASSWORD + "\n").returncode == 1

    assert users(sqlite_db, "passwd", "alice", "--password-stdin", stdin="a new password\n").returncode == 0
    assert users(sqlite_db, "admin", "alice").stdout == "alice is a server admin\n"
    listed = [json.loads(line) for line in users(sqlite_db, "list", "--format", "json").stdout.splitlines()]
    assert [(a["nick"], a["admin"]) for a in listed] == [("alice", True)]
    assert users(sqlite_db, "admin", "alice", "--revoke").stdout == "alice is no longer a server admin\n"
    text = users(sqlite_db).stdout.splitlines()
    assert text[0].split() == ["NICK", "REGISTERED", "(UTC)", "LAST", "SEEN", "(UTC)", "ADMIN"]

    alice.send("/quit")
    alice.expect_closed()
    old = server.client("x")
    old.send(f"/login alice {PASSWORD}")
    old.expect("[error bad_password]")  # the new password is the one now
    old.login("alice", "a new password")
    assert users(sqlite_db, "delete", "alice").returncode == 0
    assert users(sqlite_db, "delete", "alice").stderr == "chat users delete: there is no account alice\n"
    assert users(sqlite_db, "passwd", "nobody", "--password-stdin", stdin=PASSWORD + "\n").returncode == 1


def test_users_on_a_missing_database_is_one_line(tmp_path: object) -> None:
    result = users(str(tmp_path) + "/nothing.sqlite")
    assert result.returncode == 1 and result.stderr.startswith("chat users: no database at ")


def test_the_password_prompt_does_not_echo(make_server: Callable[..., ServerThread], sqlite_db: str) -> None:
    make_server()  # creates the database (and runs beside the command)
    pid, fd = pty.fork()
    if pid == 0:  # the child: chat users add, on a terminal
        os.execvp(chat_command()[0], [*chat_command(), "users", "add", "carol", "--db", sqlite_db,
                                      "--password-profile", "test"])
    seen = b""

    def read_until(needle: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + WAIT * 3
        while needle not in seen:
            assert time.monotonic() < deadline, f"no {needle!r} in {seen!r}"
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    seen += os.read(fd, 1024)
                except OSError:  # the child closed its side
                    break

    try:
        read_until(b"Password: ")  # the space comes from getpass, once echo is off
        os.write(fd, b"Zq7-typed-unseen\n")
        read_until(b"Repeat for confirmation: ")
        os.write(fd, b"Zq7-typed-unseen\n")
        read_until(b"carol is registered")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"Zq7-typed-unseen" not in seen  # the terminal never showed it
