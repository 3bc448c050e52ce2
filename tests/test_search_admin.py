"""`chat history --search` and `chat index`, as real processes beside a running server."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from collections.abc import Callable

import pytest

from harness import ServerThread, chat_command, database_before_search


def chat(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*chat_command(), *args], capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def talked(make_server: Callable[..., ServerThread], any_db: str) -> str:
    server = make_server(db=any_db)
    alice, bob = server.client("alice"), server.client("bob")
    alice.send("the deploy failed", "/me retries the deploy")
    bob.send("/join ops", "deploy fixed in #ops", "/msg alice deploy secrets, privately")
    bob.expect("deploy fixed in #ops")
    alice.expect("deploy secrets, privately")
    alice.send("café déjà vu")
    alice.expect("café déjà vu")
    return any_db  # the server keeps running: searches work beside it


def test_search_every_room_and_private_message(talked: str) -> None:
    out = chat("history", "--db", talked, "--search", "deploy").stdout.splitlines()
    assert [line.split("  ", 1)[1] for line in out] == [
        "(private)  bob -> alice: deploy secrets, privately",
        "#ops  bob: deploy fixed in #ops",
        "#lobby  * alice retries the deploy",
        "#lobby  alice: the deploy failed",
    ]  # newest first, each with where it was said
    assert all(line[:4].isdigit() and line[10] == " " for line in out)


def test_search_formats_and_narrowing(talked: str) -> None:
    def found(*args: str) -> list[dict[str, object]]:
        out = chat("history", "--db", talked, "--format", "json", *args).stdout
        return [json.loads(line) for line in out.splitlines()]

    private, ops, action, first = found("--search", "deploy")
    assert (private["type"], private["nick"], private["to"]) == ("private", "bob", "alice")
    assert (ops["room"], action["type"], first["text"]) == ("ops", "action", "the deploy failed")
    assert [m["text"] for m in found("--search", "deploy in:#lobby")] == ["retries the deploy", "the deploy failed"]
    assert found("--search", "deploy", "--room", "ops") == [ops]
    assert found("--search", "deploy from:BOB -privately") == [ops]
    assert found("--search", '"deploy failed"') == [first]
    assert found("--search", "deploy", "--limit", "2") == [private, ops]
    assert [m["text"] for m in found("--search", "CAFE deja")] == ["café déjà vu"]
    assert found("--search", "from:alice before:2000-01-01") == []
    out = chat("history", "--db", talked, "--search", "deploy in:ops", "--format", "csv").stdout
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["id", "time", "room", "kind", "nick", "to", "text"]
    assert rows[1][2:] == ["ops", "message", "bob", "", "deploy fixed in #ops"]
    rows = list(csv.reader(io.StringIO(chat("history", "--db", talked, "--search", "secrets", "--format",
                                            "csv").stdout)))
    assert rows[1][2:] == ["", "private", "bob", "alice", "deploy secrets, privately"]


def test_search_errors(make_server: Callable[..., ServerThread], sqlite_db: str) -> None:
    make_server().client("alice").send("x")
    for args, says in [
        (["--search", '"unclosed'], "chat history: The phrase \"unclosed has no closing quote."),
        (["--search", "x in:#nowhere"], "chat history: there is no room #nowhere"),
        (["--search", "x", "--room", "bad!"], "not a valid room name"),
        (["--search", "-x"], "besides -words"),
        (["--search", "x", "--grep", "y", "--user", "bob"], "--user, --grep and --search do not mix"),
        ([], "say which room: --room ROOM (or search them all: --search QUERY)"),
    ]:
        result = chat("history", "--db", sqlite_db, *args, check=False)
        assert result.returncode == 1 and says in result.stderr and not result.stdout, (args, result.stderr)


def test_chat_index_beside_a_running_server(make_server: Callable[..., ServerThread], any_db: str) -> None:
    database_before_search(any_db, 2000).dispose()
    server = make_server(db=any_db, index_when_idle=0)  # upgrades the database: an empty index, 2000 to do
    server.client("alice").send("common and new")

    before = chat("history", "--db", any_db, "--search", "common", "--format", "json")
    assert [json.loads(line)["text"] for line in before.stdout.splitlines()] == ["common and new"]
    assert "messages with ids below 2001 are not indexed yet" in before.stderr and "chat index" in before.stderr

    done = chat("index", "--db", any_db, "--batch", "300")
    assert done.stdout.strip() == "search index complete: 2000 messages indexed"
    assert "indexing 2000 older messages, newest first" in done.stderr
    again = chat("index", "--db", any_db)
    assert again.stdout.strip() == "search index complete (nothing to do)"

    after = chat("history", "--db", any_db, "--search", "common", "--format", "json")
    assert len(after.stdout.splitlines()) == 2001 and not after.stderr
    assert chat("history", "--db", any_db, "--search", '"uniq1234"').stdout.count("\n") == 1
    assert server.client("bob")  # the server is fine


def test_chat_index_refuses_a_database_without_the_index(tmp_path: object) -> None:
    db = str(tmp_path) + "/old.sqlite"
    database_before_search(db, 10).dispose()
    result = chat("index", "--db", db, check=False)
    assert result.returncode == 1 and "start chat serve on it once" in result.stderr
