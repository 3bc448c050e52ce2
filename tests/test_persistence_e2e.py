"""History that outlives the server: restarts, SIGTERM, and the same server on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable

import pytest

from harness import (
    WRITE_SYSCALL,
    LineClient,
    ServerThread,
    blocked_writing,
    chat_command,
    full_pipe,
    serve_process,
    wait_for,
)


def _chat_a_little(server: ServerThread) -> None:
    alice, bob = server.client("alice"), server.client("bob")
    alice.send("/join dev", "/topic #dev Where the work happens")
    alice.expect("set the topic")
    alice.send("first in dev", "/me ships it", "/msg bob private hello", "/msg #lobby lobby hello")
    bob.expect("private hello")
    bob.expect("lobby hello")
    alice.send("/quit")
    alice.expect_closed()


def test_history_survives_a_restart(make_server: Callable[..., ServerThread], any_db: str) -> None:
    first = make_server(db=any_db)
    _chat_a_little(first)
    first.stop()

    second = make_server(db=any_db)
    carol = LineClient(second.host, second.port, json_mode=True)
    carol.send("carol", "/join dev")
    events = carol.events_until("history_end", room="dev")
    joined = next(e for e in events if e["type"] == "joined" and e["room"] == "dev")
    assert joined["topic"] == "Where the work happens"
    history = [e for e in events if e.get("history") and e.get("room") == "dev"]
    assert [(e["type"], e["nick"], e["text"]) for e in history] == [
        ("message", "alice", "first in dev"), ("action", "alice", "ships it")]
    carol.send("/history lobby 10 after 0")
    lobby = carol.events_until("history_end", room="lobby")
    assert [e["text"] for e in lobby if e.get("history")] == ["lobby hello"]
    # ids keep growing after a restart
    carol.send("/msg #dev after the restart")
    live = carol.expect_event("message", text="after the restart")
    assert live["id"] > max(e["id"] for e in history)


def test_sigterm_stores_everything_accepted_tells_clients_and_exits_0(sqlite_db: str) -> None:
    with serve_process(sqlite_db, "--rate", "0") as server:
        alice = server.client("alice")
        bob = server.client("bob")
        for i in range(200):
            alice.send(f"line {i}")
        alice.sync()
        assert server.terminate(signal.SIGTERM) == 0
        farewell = bob.expect_closed()
        assert any("shutting down" in line and "server_shutdown" in line for line in farewell)
        assert "SIGTERM" in server.log
    with serve_process(sqlite_db, "--rate", "0") as again:
        carol = LineClient(again.host, again.port, json_mode=True)
        carol.register("carol")
        carol.expect_event("history_end", reason="backlog")
        carol.send("/history lobby 500 after 0")
        texts = [e["text"] for e in carol.events_until("history_end", reason="page") if e.get("history")]
        assert texts == [f"line {i}" for i in range(200)]
        again.terminate()


def test_a_sigterm_the_moment_the_listening_line_is_written_is_a_clean_shutdown(sqlite_db: str) -> None:
    # The listening line says the server is up, so a supervisor may send SIGTERM as soon as it reads it. To hit
    # that moment exactly, the line is written into a full pipe: the server blocks in write() on it, is signalled
    # there, and only then is the pipe read.
    if WRITE_SYSCALL is None:
        pytest.skip(f"write(2)'s syscall number on {os.uname().machine} is not known here")
    r, w = full_pipe()
    proc = subprocess.Popen([*chat_command(), "serve", "--db", sqlite_db, "--port", "0"], stdout=w,
                            stderr=subprocess.PIPE)
    os.close(w)
    try:
        wait_for(lambda: blocked_writing(proc.pid, 1), timeout=30, what="chat serve to write its listening line")
        proc.send_signal(signal.SIGTERM)
        with os.fdopen(r, "rb") as pipe:
            out = pipe.read()  # unblocks it; read to the end, when it exits
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert b"chat server listening on 127.0.0.1:" in out
    assert code == 0, f"exit status {code}"
    assert proc.stderr is not None and b"SIGTERM: shutting down" in proc.stderr.read()


def test_the_same_server_runs_on_postgresql(make_server: Callable[..., ServerThread], postgres_db: str) -> None:
    server = make_server(db=postgres_db)
    alice = LineClient(server.host, server.port, json_mode=True)
    alice.register("alice")
    bob = server.client("bob")
    bob.send("hello from postgres")
    message = alice.expect_event("message", text="hello from postgres")
    assert message["id"] >= 1
    alice.send("/history 5")
    assert [e["text"] for e in alice.events_until("history_end", reason="page") if e.get("history")] == []
    json.dumps(message)


def test_chat_serve_works_from_any_folder_with_the_default_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The migrations ship inside the package: no project checkout is needed where the server runs."""
    with serve_process("chat.sqlite", cwd=str(tmp_path)) as server:
        assert "127.0.0.1:" in server.banner
        alice = server.client("alice")
        alice.send("stored here")
        alice.sync()
        server.client("bob").expect("alice: stored here")
        assert server.terminate() == 0
    assert (tmp_path / "chat.sqlite").exists()
