"""Crashes and shutdowns under load, with real `chat serve` processes.

kill -9: after a restart, every message any client received is in the database, unchanged, and new ids go on
from there (the server delivers only what is committed); the same with every client on TLS. SIGTERM: exit status
0, every accepted message stored and delivered, every client told why it is being disconnected.
"""

from __future__ import annotations

import json
import random
import signal
import time
from typing import Any

import pytest

from harness import (
    ServeProcess,
    Swarm,
    SwarmClient,
    log_problems,
    record_figures,
    scale,
    serve_process,
    stored_messages,
)


def _messages_only(line: str) -> bool:
    return line.startswith('{"type":"message"') or line.startswith('{"type":"bye"')


def _json_clients(swarm: Swarm, count: int, prefix: str) -> list[SwarmClient]:
    clients = swarm.connect(count, keep=lambda line: _messages_only(line) or '"type":"welcome"' in line
                            or '"type":"pong"' in line)
    for c in clients:
        c.send("/format json")
    swarm.register(clients, [f"{prefix}{i}" for i in range(count)])
    return clients


def _chat(swarm: Swarm, clients: list[SwarmClient], seconds: float, per_second: int) -> int:
    """Every client says numbered lines at `per_second` each, reading all the while. Returns lines sent."""
    sent = 0
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * per_second) + 1
        for c in clients:
            while c.state.setdefault("said", 0) < due:
                c.send(f"load {c.nick} {c.state['said']}")
                c.state["said"] += 1
                sent += 1
        swarm.pump(0.002)
    return sent


def _received(clients: list[SwarmClient]) -> dict[int, tuple[str, str]]:
    """Every message any client received: id -> (sender, text); the same id always means the same message."""
    seen: dict[int, tuple[str, str]] = {}
    for c in clients:
        last = 0
        for line in c.lines:
            if line.startswith('{"type":"message"'):
                event = json.loads(line)
                assert event["id"] > last, f"{c.nick} got ids out of order"
                last = event["id"]
                assert seen.setdefault(event["id"], (event["nick"], event["text"])) == (event["nick"], event["text"])
    return seen


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_kill_9_under_load_loses_nothing_anyone_received(sqlite_db: str, tls: bool, request: Any) -> None:
    rng = random.Random()
    cycles = scale(3, 20)
    checked = undelivered = 0
    files = request.getfixturevalue("tls_files") if tls else None
    args = ["--rate", "0", *(files.serve_args() if files else [])]
    proc = ServeProcess(sqlite_db, *args)
    try:
        for cycle in range(cycles):
            before = set(stored_messages(sqlite_db))
            if files is not None:  # every client on TLS
                assert proc.tls_port is not None, proc.banner
                swarm = Swarm(proc.host, proc.tls_port, files.client_context())
            else:
                swarm = Swarm(proc.host, proc.port)
            clients = _json_clients(swarm, 20, f"k{cycle}x")
            _chat(swarm, clients, rng.uniform(0.3, 1.0), per_second=200)
            proc.proc.send_signal(signal.SIGKILL)  # in the middle of it all
            assert proc.proc.wait(10) == -signal.SIGKILL
            swarm.run_until(lambda cs=clients: all(c.closed for c in cs), what="every client to see the crash")
            received = _received(clients)
            swarm.close_all()
            assert received, "the load never got going"
            proc.kill()

            proc = ServeProcess(sqlite_db, *args)  # the restart recovers the database
            stored = stored_messages(sqlite_db)
            missing = {i: m for i, m in received.items() if stored.get(i, (None, None, None))[::2] != m}
            assert not missing, f"cycle {cycle}: received but not stored: {sorted(missing.items())[:5]}"
            checked += len(received)
            undelivered += len(set(stored) - before - set(received))  # committed, then killed before delivery
            probe = proc.client("probe", json_mode=True)
            probe.send("after the crash")
            assert probe.expect_event("message", text="after the crash")["id"] > max(stored)  # no id is reused
            probe.close()
        assert not log_problems(proc.log)
    finally:
        proc.kill()
    record_figures("kill_9_tls" if tls else "kill_9", crashes_survived=cycles, messages_checked=checked,
                   committed_not_yet_delivered=undelivered)


def test_sigterm_under_load_stores_and_delivers_everything_then_says_goodbye(sqlite_db: str) -> None:
    with serve_process(sqlite_db, "--rate", "0") as proc:
        swarm = Swarm(proc.host, proc.port)
        clients = _json_clients(swarm, 20, "t")
        sent = _chat(swarm, clients, 1.0, per_second=50)
        proc.proc.send_signal(signal.SIGTERM)
        swarm.run_until(lambda: all(c.closed for c in clients), timeout=30, what="every client to be closed")
        assert proc.proc.wait(30) == 0
        _check_everything_stored_and_told(clients, sqlite_db)
        assert "SIGTERM: shutting down" in proc.log and not log_problems(proc.log)
        swarm.close_all()
    record_figures("sigterm", lines_sent=sent, clients=len(clients))


def test_sigterm_stores_the_lines_flood_control_was_holding_back(sqlite_db: str) -> None:
    with serve_process(sqlite_db, "--rate", "2", "--burst", "5", "--flood-limit", "100") as proc:
        swarm = Swarm(proc.host, proc.port)
        clients = _json_clients(swarm, 5, "f")
        for c in clients:
            c.send(*[f"paste {c.nick} {i}" for i in range(40)])  # read at once; most wait for flood control
        swarm.run_until(lambda: all(sum("paste" in line for line in c.lines) >= 5 for c in clients),
                        what="the bursts to come through")
        proc.proc.send_signal(signal.SIGTERM)
        swarm.run_until(lambda: all(c.closed for c in clients), timeout=30, what="every client to be closed")
        assert proc.proc.wait(30) == 0
        _check_everything_stored_and_told(clients, sqlite_db)
        assert len(stored_messages(sqlite_db)) == 5 * 40
        swarm.close_all()


def _check_everything_stored_and_told(clients: list[SwarmClient], db: str) -> None:
    stored = {i: (nick, text) for i, (nick, _room, text) in stored_messages(db).items()}
    for c in clients:
        got = {json.loads(line)["id"]: (c.nick, "") for line in c.lines if line.startswith('{"type":"message"')}
        assert set(got) == set(stored), f"{c.nick} did not get exactly the stored messages"
        bye = json.loads(c.lines[-1])
        assert bye["type"] == "bye" and bye["code"] == "server_shutdown", c.lines[-1]
    assert _received(clients) == stored


def test_a_second_server_is_refused_while_the_first_runs_and_a_killed_one_leaves_no_lock(any_db: str) -> None:
    import subprocess

    from harness import chat_command

    with serve_process(any_db) as first:
        result = subprocess.run([*chat_command(), "serve", "--db", any_db, "--port", "0"], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 1
        assert "cannot start: another chat server is using" in result.stderr
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
    deadline = time.monotonic() + 10  # PostgreSQL drops the dead server's session (and its lock) promptly
    while True:
        try:
            with serve_process(any_db) as second:
                second.client("alive").sync()
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
