"""Several `chat serve --cluster` nodes on one PostgreSQL database (docs/CLUSTER.md): real processes on loopback
ports, a database of their own per test (dropped after), real clients in JSON mode."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from harness.clients import LineClient, wait_for
from harness.process import ServeProcess, chat_command
from sqlalchemy import create_engine, text

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

NODE_TIMEOUT = 3  # seconds: the bound below is this plus a heartbeat plus a reaping round
GONE_BOUND = NODE_TIMEOUT + 2 * 2 + 3


@pytest.fixture
def nodes(postgres_db: str) -> Iterator[Any]:
    """`start(name)` runs a node; all are killed at the end."""
    started: list[ServeProcess] = []

    def start(name: str, *extra: str) -> ServeProcess:
        node = ServeProcess(postgres_db, "--cluster", "--node", name, "--node-timeout", str(NODE_TIMEOUT),
                            "--rate", "0", "--log-level", "warning", *extra)
        started.append(node)
        return node

    start.db = postgres_db  # type: ignore[attr-defined]
    try:
        yield start
    finally:
        for node in started:
            node.kill()


def client(node: ServeProcess, nick: str) -> LineClient:
    c = LineClient(node.host, node.port, json_mode=True)
    c.register(nick)
    return c


def wait_members(c: LineClient, room: str, nicks: set[str], timeout: float = 20) -> None:
    """Ask /who until it lists exactly `nicks` (the other nodes' joins and quits arrive as room events)."""
    deadline = time.monotonic() + timeout
    while True:
        c.send(f"/who #{room}")
        members = set(c.expect_event("who", room=room)["members"])
        if members == nicks:
            return
        assert time.monotonic() < deadline, f"{c.nick} sees {members} in #{room}, not {nicks}"
        time.sleep(0.1)


def said(c: LineClient, count: int, timeout: float = 20) -> list[dict[str, Any]]:
    """The first `count` room messages `c` received (after its join), in order."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, f"{c.nick} got {len(got)} of {count} messages"
        event = c.expect_event("message", timeout=max(0.1, deadline - time.monotonic()))
        got.append(event)
    return got


def test_clients_on_three_nodes_see_one_order_without_gap_or_duplicate(nodes: Any) -> None:
    a, b, c = nodes("a"), nodes("b"), nodes("c")
    clients = [client(a, "ann"), client(b, "bob"), client(c, "cid")]
    for x in clients:
        x.sync()
    for x in clients:  # everyone sees everyone in the lobby (a cluster-wide /who) before speaking
        wait_members(x, "lobby", {"ann", "bob", "cid"})
    per_sender = 30
    threads = [threading.Thread(target=lambda x=x: [x.send(f"{x.nick} {i}") for i in range(per_sender)])
               for x in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen = [[(e["id"], e["nick"], e["text"]) for e in said(x, 3 * per_sender)] for x in clients]
    assert seen[0] == seen[1] == seen[2], "the nodes delivered different orders"
    ids = [i for i, _nick, _text in seen[0]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for x in clients:  # each sender's own messages in the order it sent them
        mine = [t for _i, nick, t in seen[0] if nick == x.nick]
        assert mine == [f"{x.nick} {i}" for i in range(per_sender)]
