"""The command line: `chat history`, `chat rooms`, `chat --help`, as real processes."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
from collections.abc import Callable

import pytest

from harness import ServerThread, chat_command


def chat(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*chat_command(), *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def filled_db(make_server: Callable[..., ServerThread], sqlite_db: str) -> str:
    server = make_server()
    alice, bob = server.client("alice"), server.client("bob")
    alice.send("hello world", "/me waves", "second, with a comma")
    bob.send("Hello back", "/join dev", "/topic #dev Dev talk", "in dev")
    bob.expect("in dev")
    alice.expect("Hello back")
    return sqlite_db  # the server keeps running: admin queries work beside it


def test_history_text(filled_db: str) -> None:
    out = chat("history", "--db", filled_db, "--room", "lobby").stdout.splitlines()
    bodies = [line.split("  ", 1)[1] for line in out]
    assert bodies == ["alice: hello world", "* alice waves", "alice: second, with a comma", "bob: Hello back"]
    assert all(line[:4].isdigit() and line[10] == " " for line in out)  # 2026-11-24 07:45:59  ...


def test_history_filters(filled_db: str) -> None:
    def texts(*args: str) -> list[str]:
        out = chat("history", "--db", filled_db, "--room", "#lobby", "--format", "json", *args).stdout
        return [json.loads(line)["text"] for line in out.splitlines()]

    assert texts("--limit", "2") == ["second, with a comma", "Hello back"]
    assert texts("--user", "BOB") == ["Hello back"]
    assert texts("--grep", "hello") == ["hello world", "Hello back"]
    assert texts("--grep", "%") == []
    assert texts("--since", "2000-01-01", "--until", "2999-12-31") == texts()
    assert texts("--until", "2000-01-01") == []
    assert texts("--since", "2999-01-01T00:00") == []


def test_history_json_and_csv(filled_db: str) -> None:
    first = json.loads(chat("history", "--db", filled_db, "--room", "lobby", "--format", "json").stdout.split("\n")[0])
    assert first["type"] == "message" and first["room"] == "lobby" and first["nick"] == "alice"
    assert first["time"].endswith("Z") and isinstance(first["id"], int)
    out = chat("history", "--db", filled_db, "--room", "lobby", "--format", "csv").stdout
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["id", "time", "room", "kind", "nick", "text"]
    assert rows[3][3:] == ["message", "alice", "second, with a comma"]


def test_history_errors(filled_db: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    unknown = chat("history", "--db", filled_db, "--room", "nowhere", check=False)
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "chat history: there is no room #nowhere"
    missing = chat("history", "--db", str(tmp_path / "none.sqlite"), "--room", "lobby", check=False)
    assert missing.returncode == 1 and "no database at" in missing.stderr
    assert not (tmp_path / "none.sqlite").exists()
    bad_time = chat("history", "--db", filled_db, "--room", "lobby", "--since", "yesterday", check=False)
    assert bad_time.returncode == 1 and "not an ISO date" in bad_time.stderr


def test_rooms(filled_db: str) -> None:
    out = chat("rooms", "--db", filled_db).stdout.splitlines()
    assert out[0].split() == ["ROOM", "MESSAGES", "LAST", "ACTIVITY", "(UTC)", "TOPIC"]
    dev = next(line for line in out if line.startswith("#dev"))
    assert dev.split()[1] == "1" and dev.endswith("Dev talk")
    rows = [json.loads(line) for line in chat("rooms", "--db", filled_db, "--format", "json").stdout.splitlines()]
    assert {r["room"]: r["messages"] for r in rows} == {"dev": 1, "lobby": 4}


def test_every_command_has_help() -> None:
    assert "serve" in chat("--help").stdout
    for command in ("serve", "client", "history", "rooms"):
        assert "Usage: chat " + command in chat(command, "--help").stdout


def test_chat_bench_load_tests_a_running_server(make_server: Callable[..., ServerThread]) -> None:
    server = make_server()
    result = chat("bench", "--port", str(server.port), "--clients", "20", "--rooms", "2", "--messages", "30")
    assert "deliveries" in result.stdout
    assert server.client("after_the_bench")  # the server is fine afterwards


def test_chat_bench_refuses_a_remote_host_without_asking() -> None:
    result = chat("bench", "--host", "192.0.2.1", check=False)
    assert result.returncode == 2 and "--allow-remote" in result.stderr


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [("--host", "", "the host is empty"), ("--host", "  ", "the host is empty"),
     ("--lobby", "#Lobby Room", "is not a valid room name"), ("--lobby", "b@d", "is not a valid room name")],
)
def test_serve_refuses_a_bad_host_or_lobby_before_listening(tmp_path, option: str, value: str,  # type: ignore[no-untyped-def]
                                                            says: str) -> None:
    result = chat("serve", "--db", str(tmp_path / "chat.sqlite"), "--port", "0", option, value, check=False,
                  timeout=30)
    assert result.returncode == 2 and says in result.stderr
    assert "listening" not in result.stdout and "Traceback" not in result.stderr
    assert not (tmp_path / "chat.sqlite").exists()  # refused before anything was opened


def test_a_lobby_given_with_its_hash_is_the_room_everyone_can_join(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(lobby="#Dev")
    alice = server.client("alice")
    assert "You joined #Dev (1 member)" in alice.seen[-1]
    bob = server.client("bob")
    alice.expect("[#Dev] *** bob joined")
    bob.send("/join #dev")
    assert bob.expect("***") == "*** #Dev is now your current room."  # the same room, not a new one


# ------------------------------------------------------------------------------ databases that cannot be used


def _newer_schema(path: str) -> str:
    """A database a newer chat wrote: its Alembic revision is one this chat does not know."""
    from sqlalchemy import create_engine, text

    from chat.storage.database import make_engine, upgrade

    engine = make_engine(path)
    upgrade(engine)
    engine.dispose()
    raw = create_engine(f"sqlite:///{path}")
    with raw.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    raw.dispose()
    return path


UNUSABLE = {
    "folder": (lambda tmp: str(tmp / "a-folder"), "is a folder"),
    "not sqlite": (lambda tmp: str(tmp / "notes.txt"), "file is not a database"),
    "unknown scheme": (lambda tmp: "foo://bar", "foo://bar"),
    "bad port": (lambda tmp: "postgresql+psycopg://u@h:port/d", "not a database URL"),
    "postgresql down": (lambda tmp: "postgresql+psycopg://postgres@127.0.0.1:1/test", "Connection refused"),
    "newer schema": (lambda tmp: _newer_schema(str(tmp / "newer.sqlite")), "newer"),
}


@pytest.mark.parametrize("command", ["serve", "history", "rooms"])
@pytest.mark.parametrize("case", list(UNUSABLE))
def test_a_database_that_cannot_be_used_is_one_line_and_exit_1(tmp_path, command: str, case: str) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "notes.txt").write_text("shopping: eggs, milk\n")
    make_db, says = UNUSABLE[case]
    db = make_db(tmp_path)
    args = {"serve": ["serve", "--port", "0"], "history": ["history", "--room", "lobby"], "rooms": ["rooms"]}
    result = chat(*args[command], "--db", db, check=False, timeout=30)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"chat {command}: ") and says in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr  # one line, no traceback
    assert "listening" not in result.stdout
    assert (tmp_path / "notes.txt").read_text() == "shopping: eggs, milk\n"  # nothing written to it
    assert not (tmp_path / "a-folder.lock").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [(["--since", "0001-01-01T00:00+05:00"], "out of range"), (["--until", "9999-12-31T23:59-05:00"], "out of range"),
     (["--limit", "99999999999999999999"], "--limit")],
)
def test_history_arguments_out_of_range_are_one_line(filled_db: str, args: list[str], says: str) -> None:
    result = chat("history", "--db", filled_db, "--room", "lobby", *args, check=False)
    assert result.returncode in (1, 2) and says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_serve_help_shows_the_server_config_defaults() -> None:
    from dataclasses import fields

    from chat.server.config import DEFAULTS

    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}
    out = subprocess.run([*chat_command(), "serve", "--help"], capture_output=True, text=True, timeout=60,
                         env=env).stdout
    shown: dict[str, str] = {}
    for line in out.splitlines():
        found = re.search(r"(--[a-z-]+)\s.*\[default: ([^\]]+)\]", line)
        if found:
            shown[found[1]] = found[2]
    expected = {f"--{f.name.replace('_', '-')}": str(getattr(DEFAULTS, f.name)) for f in fields(DEFAULTS)
                if f.init and f.name not in ("exempt", "server_name", "plain", "cluster")  # server_name is no option;
                and getattr(DEFAULTS, f.name) not in (None, ())}  # plain is --no-plain; --cluster a flag; off by
    # default (--web-port, TLS)
    assert {option: shown.get(option) for option in expected} == expected
    assert f"default {', '.join(DEFAULTS.exempt)}." in out  # --exempt is repeatable: its default is said in words
