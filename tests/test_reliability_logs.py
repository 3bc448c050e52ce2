"""Logging: one line per connect and per disconnect, with the reason; errors with their context; levels; and
`--log-format json` for log shippers (one object per line, with the fields as keys)."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Callable
from pathlib import Path

from harness import LineClient, ServerThread, capture_logs, serve_process, sqlite_write_lock, wait_for


def test_every_way_a_connection_ends_is_logged_once_with_its_reason(
    make_server: Callable[..., ServerThread], tmp_path: Path,
) -> None:
    server = make_server(nick_timeout=1.0, rate=5.0, burst=5, flood_limit=10)
    fast = make_server(db=str(tmp_path / "fast.sqlite"), sendq=16384, max_line=1024)  # no flood control
    with capture_logs() as logs:
        quitter = server.client("quitter")
        quitter.send("/quit")
        quitter.expect_closed()

        leaver = server.client("leaver")  # EOF without a word
        leaver.sock.shutdown(socket.SHUT_WR)
        leaver.expect_closed()

        crasher = server.client("crasher")  # a reset, as when a program crashes
        crasher.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        crasher.close()

        flooder = server.client("flooder")
        flooder.send(*["spam"] * 100)
        flooder.expect_closed()

        silent = LineClient(server.host, server.port)
        silent.expect_closed(timeout=5)

        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect((fast.host, fast.port))
        slow.sendall(b"slow\n")
        talker = fast.client("talker")
        for i in range(40):  # 4 MB: far more than the slow reader's socket and its 16 KiB queue take
            talker.send(*["x" * 1000] * 100)
            talker.sync(f"t{i}")  # the talker reads what it is sent

        stays = fast.client("stays")
        reasons = {
            "quitter": "quit", "leaver": "dropped", "crasher": "dropped (connection reset)", "flooder": "flood",
            "-": "registration timeout", "slow": "send queue exceeded",
        }
        for nick, reason in reasons.items():
            logs.expect("disconnect", f" {nick}@127.0.0.1:", f"reason={reason} after")
        server.stop()
        fast.stop()
        logs.expect("disconnect", " stays@", "reason=server shutdown")
        talker.close()
        slow.close()
        stays.close()
    connects = [r for r in logs.records if getattr(r, "event", None) == "connect"]
    disconnects = [r for r in logs.records if getattr(r, "event", None) == "disconnect"]
    assert len(connects) == len(disconnects) == 8  # one each, for every connection
    assert {r.session for r in connects} == {r.session for r in disconnects}  # type: ignore[attr-defined]


def test_a_storage_error_is_logged_with_its_context(make_server: Callable[..., ServerThread], sqlite_db: str) -> None:
    server = make_server(busy_timeout=0.2)
    alice = server.client("alice")
    with capture_logs() as logs, sqlite_write_lock(sqlite_db):
        alice.send("one", "two")
        alice.expect("[error not_delivered]")
        line = logs.expect("storage: commit of")
    assert "(ids " in line and "OperationalError: database is locked" in line
    assert "INSERT" not in line and "one" not in line.split("failed")[1]  # no SQL, no message text
    record = next(r for r in logs.records if getattr(r, "event", None) == "storage_error")
    assert record.messages >= 1 and record.first_id >= 1  # type: ignore[attr-defined]


def test_json_logs_for_log_shippers(sqlite_db: str) -> None:
    with serve_process(sqlite_db, "--log-format", "json", "--log-level", "debug", "--max-clients", "2") as proc:
        alice = proc.client("alice")
        bob = proc.client()
        refused = proc.client()
        refused.expect_closed()
        bob.send("/quit")
        bob.expect_closed()
        wait_for(lambda: '"event": "disconnect"' in proc.log, what="the disconnect line")
        assert proc.terminate(signal.SIGTERM) == 0
        alice.close()
    records = [json.loads(line) for line in proc.log.splitlines()]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    connect = next(r for r in records if r.get("event") == "connect")
    assert connect["level"] == "info" and connect["peer"].startswith("127.0.0.1:") and connect["session"] == 1
    quit_ = next(r for r in records if r.get("event") == "disconnect" and r["session"] == 2)
    assert quit_["reason"] == "quit" and quit_["nick"] is None and quit_["seconds"] >= 0
    refusal = next(r for r in records if r.get("event") == "refused")
    assert refusal["level"] == "warning" and refusal["code"] == "server_full"
    shutdown = [r for r in records if r.get("event") == "disconnect" and r["reason"] == "server shutdown"]
    assert [r["nick"] for r in shutdown] == ["alice"]


def test_log_level_warning_keeps_only_what_needs_attention(sqlite_db: str) -> None:
    with serve_process(sqlite_db, "--log-level", "warning", "--max-clients", "1") as proc:
        first = proc.client("first")
        proc.client().expect_closed()  # refused: a warning
        wait_for(lambda: "refused" in proc.log, what="the refusal")
        first.send("/quit")
        first.expect_closed()
        assert proc.terminate(signal.SIGTERM) == 0  # the log is complete once the process is gone
    assert "WARNING" in proc.log and "refused" in proc.log
    assert " INFO " not in proc.log and "disconnect" not in proc.log
