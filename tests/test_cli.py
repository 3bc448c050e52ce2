"""The command line: `chat history`, `chat rooms`, `chat --help`, as real processes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from collections.abc import Callable

import pytest

from harness import ServerThread, chat_command


def chat(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*chat_command(), *args], capture_output=True, text=True, timeout=60)
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
