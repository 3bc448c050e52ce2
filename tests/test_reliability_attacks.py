"""The attacks an outside review mounted (issue 8), rerun: each failed before the fix it names.

The server runs as a real process where its memory is measured, in-process where the test looks inside (always
through `call_soon`: chat state belongs to the loop thread). Figures go to `record_figures`; CHAT_SOAK=1 runs
the attacks at the scale of the review (minutes).
"""

from __future__ import annotations

import gc
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, event

from chat.protocol.events import ChatMessage
from chat.server.app import ChatServer
from chat.server.reads import HistoryRequest
from chat.server.state import ROOM_LIST_FRESH, ChatState
from chat.storage.database import make_engine
from chat.storage.records import StoredRoom, WriteBatch
from chat.storage.repository import ChatStore
from harness import (
    WAIT,
    ServerThread,
    Swarm,
    SwarmClient,
    peak_rss_bytes,
    record_figures,
    scale,
    serve_process,
    server_config,
    sqlite_write_lock,
)

EMOJI_LINE = "😀" * 1023  # 4 KB of UTF-8 in 1,023 characters: the review's heaviest history line


def _fill_big_room(swarm: Swarm, messages: int = 100) -> None:
    (filler,) = swarm.connect(1, "filler")
    swarm.register([filler], ["filler"])
    filler.send("/join big")
    filler.send(*[f"{i} {EMOJI_LINE}" for i in range(messages)])
    swarm.sync([filler], "filled")
    swarm.drop(filler)


def _not_history(line: str) -> bool:
    return not line.startswith("[#big] [")  # history lines of #big are many and long: not kept


def _echo_time(swarm: Swarm, canary: SwarmClient, text: str) -> float:
    start = time.monotonic()
    canary.send(text)
    swarm.run_until(lambda: any(line.endswith(f"canary: {text}") for line in canary.lines), WAIT,
                    f"the canary's echo of {text!r}")
    return time.monotonic() - start


# ------------------------------------------------------------------------------------------- /history


def test_history_bursts_from_reconnecting_clients_hold_memory_and_spare_the_canary(sqlite_db: str) -> None:
    """20 connections at a time each send a nick then 19 x `/history big 500 before 999999`, read a little,
    and go; meanwhile a canary in another room chats. Before: 2.9 GB of pages and 2 of 5 canary echoes in 5 s."""
    rounds = scale(8, 40)
    with serve_process(sqlite_db, "--rate", "0") as server:
        swarm = Swarm(server.host, server.port)
        _fill_big_room(swarm)
        canary, partner = swarm.connect(2, "canary")
        swarm.register([canary, partner], ["canary", "partner"])
        for c in (canary, partner):
            c.send("/join quiet")
        swarm.sync([canary, partner], "joined")
        echoes = []
        for r in range(rounds):
            attackers = swarm.connect(20, f"r{r}x", keep=_not_history)
            for i, a in enumerate(attackers):
                a.send(f"atk{r}x{i}", *["/history big 500 before 999999"] * 19)
            echoes.append(_echo_time(swarm, canary, f"round {r}"))
            swarm.run_for(0.3)  # the attackers read a little, then vanish with their requests half answered
            for a in attackers:
                swarm.drop(a, reset=True)
        echoes.append(_echo_time(swarm, canary, "after"))
        peak = peak_rss_bytes(server.proc.pid)
        swarm.close_all()
    record_figures("history_burst", rounds=rounds, peak_rss_mb=round(peak / 2**20, 1),
                   worst_canary_echo_ms=round(max(echoes) * 1000, 1))
    assert peak < 300 * 2**20, f"the server grew to {peak / 2**20:.0f} MB"
    # bounded work per request: the canary is served between the attackers' pages, not after all of them
    assert max(echoes) < 3.0, f"a canary echo took {max(echoes):.2f} s"  # 5.1 s before; 50 ms here, quiet


def test_clients_reading_their_history_pages_get_every_page(make_server: Callable[..., ServerThread]) -> None:
    """A reading client that asks for many large pages at once gets them all: its next request waits until its
    queue has room, instead of the pages overflowing its send queue. Before: `send queue exceeded`."""
    server = make_server()
    swarm = Swarm(server.host, server.port)
    _fill_big_room(swarm)
    readers = swarm.connect(scale(10, 60), "reader", keep=_not_history)
    swarm.register(readers, [f"reader{i}" for i in range(len(readers))])
    for c in readers:
        c.send(*["/history big 500 before 999999"] * 19)
    def pages(c: SwarmClient) -> int:
        return sum("*** End of history" in line for line in c.lines)

    swarm.run_until(lambda: all(pages(c) >= 19 or c.closed for c in readers), WAIT * 3, "19 pages each")
    assert [c for c in readers if c.closed] == []
    assert all(pages(c) == 19 for c in readers)
    swarm.close_all()


def test_answered_history_pages_are_not_kept(make_server: Callable[..., ServerThread]) -> None:
    """Cursors, not pages: once a page is sent, nothing holds its messages. Before: each connection kept its last
    page (and so did the server after it quit)."""
    server = make_server()
    swarm = Swarm(server.host, server.port)
    _fill_big_room(swarm, 30)
    clients = swarm.connect(20, "pager", keep=_not_history)
    swarm.register(clients, [f"pager{i}" for i in range(len(clients))])
    for c in clients:
        c.send("/history big 500")
    swarm.run_until(lambda: all(any("*** End of history" in line for line in c.lines) for c in clients), WAIT,
                    "a page each")

    def kept() -> tuple[set[type], int, int]:  # on the loop thread (call_soon)
        gc.collect()
        cursors = {type(v) for c in server.loop.connections.values() for v in c.member.cursors.values()}
        requests = sum(isinstance(o, HistoryRequest) for o in gc.get_objects())
        big = sum(1 for o in gc.get_objects() if isinstance(o, ChatMessage) and o.room == "big")
        return cursors, requests, big

    cursors, requests, big = server.loop.call_soon(kept).result(WAIT)
    assert cursors == {int} and requests == 0
    assert big == 0  # nobody is in #big: its ring left memory too, and no page is held
    swarm.close_all()


# --------------------------------------------------------------------------------------------- /rooms


def _many_rooms(swarm: Swarm, count: int, per_client: int = 100) -> list[SwarmClient]:
    owners = swarm.connect(count // per_client, "owner")
    swarm.register(owners, [f"owner{i}" for i in range(len(owners))])
    topic = "t" * 390  # the longest topic there is
    for i, c in enumerate(owners):
        for j in range(per_client):
            c.send(f"/join r{i}x{j}", f"/topic {topic}")
    swarm.sync(owners, "rooms made")
    return owners


def test_a_room_list_of_thousands_is_one_bounded_page(make_server: Callable[..., ServerThread]) -> None:
    """1,600 rooms with long topics: /rooms answers with the busiest 100 and the total; the asker stays.
    Before: the whole list overflowed the asker's send queue and it was disconnected."""
    server = make_server(sendq=128 * 1024, max_rooms_per_client=200, new_rooms_burst=100, new_rooms_per_minute=6000)
    swarm = Swarm(server.host, server.port)
    _many_rooms(swarm, 1600)
    (asker,) = swarm.connect(1, "asker")
    swarm.register([asker], ["asker"])
    asker.send("/format json", "/rooms")
    swarm.run_until(lambda: any('"type":"rooms"' in line for line in asker.lines), WAIT, "the room list")
    answer = json.loads(next(line for line in asker.lines if '"type":"rooms"' in line))
    assert answer["total"] == 1601 and len(answer["rooms"]) == 100  # the lobby too
    assert answer["rooms"][0]["room"] == "lobby"  # busiest first
    swarm.sync([asker], "still here")
    swarm.close_all()


def test_room_lists_asked_by_clients_that_never_read_do_not_slow_the_others(
    make_server: Callable[..., ServerThread],
) -> None:
    """19 clients that never read each ask /rooms again and again: each gets what its queue takes, its next
    requests wait, and a canary's ping is answered at once. Before: 176 ms of loop time per /rooms, pings of
    seconds."""
    server = make_server(max_rooms_per_client=200, new_rooms_burst=100, new_rooms_per_minute=6000)
    swarm = Swarm(server.host, server.port)
    _many_rooms(swarm, 1200)
    stalled = []
    for i in range(19):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((server.host, server.port))
        s.sendall(f"stall{i}\n".encode() + b"/rooms\n" * 200)
        stalled.append(s)
    (canary,) = swarm.connect(1, "canary")
    swarm.register([canary], ["canary"])
    worst = 0.0
    for n in range(10):
        start = time.monotonic()
        swarm.sync([canary], f"p{n}")
        worst = max(worst, time.monotonic() - start)
    record_figures("rooms_flood", worst_ping_ms=round(worst * 1000, 1))
    assert worst < 2.0, f"a ping took {worst:.2f} s"  # seconds before; a few ms here, quiet
    for s in stalled:
        s.close()
    swarm.close_all()


def test_the_busiest_rooms_of_a_large_server_are_recomputed_at_most_once_a_second() -> None:
    state = ChatState(backlog=0)
    for i in range(ROOM_LIST_FRESH + 500):
        room = state.new_room(f"r{i}", 0.0)
        room.members = (object(),)  # type: ignore[assignment]
    first = state.busiest(100.0)
    busier = state.new_room("busy", 0.0)
    busier.members = (object(), object())  # type: ignore[assignment]
    assert state.busiest(100.5) == first  # within the second: the same answer, no new pass over the rooms
    assert state.busiest(101.0)[0] is busier


# ---------------------------------------------------------------------------------------------- rooms


def test_rooms_nobody_is_in_leave_memory_and_cost_no_rows(make_server: Callable[..., ServerThread]) -> None:
    """Thousands of /join + /leave of new names: nothing stays, in memory or in the database. Before: +117 MB
    for 100k and a row each."""
    server = make_server(new_rooms_burst=10_000, new_rooms_per_minute=600_000)
    client = server.client("walker")
    count = scale(2000, 100_000)
    for start in range(0, count, 500):
        client.send(*[f"/join w{i}\n/leave w{i}" for i in range(start, min(count, start + 500))])
        client.sync(f"w{start}")
    assert server.loop.call_soon(lambda: sorted(server.loop.state.rooms)).result(WAIT) == ["lobby"]
    engine = make_engine(server.config.db)
    assert ChatStore(engine).load().last_room_id == 0  # no row was ever written: none of them said anything
    engine.dispose()


def test_a_room_comes_back_with_its_topic_and_history(make_server: Callable[..., ServerThread]) -> None:
    server = make_server()
    alice = server.client("alice")
    alice.send("/join dev", "/topic Release on Friday", "hello dev")
    alice.expect("alice: hello dev")
    alice.send("/leave dev")
    alice.sync()
    assert server.loop.call_soon(lambda: "dev" in server.loop.state.rooms).result(WAIT) is False
    bob = server.client("bob")
    bob.send("/join DEV")
    assert bob.expect("You joined #dev").endswith("Topic: Release on Friday")
    assert bob.expect("history]").endswith("alice: hello dev")


def test_starting_on_many_rooms_is_a_few_queries(tmp_path: Any) -> None:
    """Start-up reads two counters, not every room. Before: one query per room (13.9 s for 100k rooms)."""
    db = str(tmp_path / "rooms.sqlite")
    first = ChatServer(server_config(db))
    first.start()
    first.stop()
    first._release()
    store = ChatStore(make_engine(db))
    store.write(WriteBatch(rooms=[StoredRoom(i, f"r{i}", None, None, None, 1.0) for i in range(1, 3001)]))
    store.engine.dispose()
    queries: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        queries.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        server = ChatServer(server_config(db))
        server.start()
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    server._release()
    assert len(queries) < 20, f"{len(queries)} queries to start on 3,000 rooms"


def test_rooms_a_client_may_create_are_limited(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(max_rooms_per_client=5, new_rooms_burst=3, new_rooms_per_minute=1)  # the lobby is free
    alice = server.client("alice")
    for name in ("a1", "a2", "a3"):
        alice.send(f"/join {name}")
        alice.expect(f"You joined #{name}")
    alice.send("/join a4")
    assert alice.expect("[error").startswith("[error too_many_rooms] You have created too many rooms lately")
    bob = server.client("bob")  # joining rooms that exist is not creating
    for name in ("a1", "a2", "a3", "lobby"):
        bob.send(f"/join {name}")
        bob.expect(f"You joined #{name}" if name != "lobby" else "is now your current room")
    bob.send("/join a4", "/join a5")
    bob.expect("You joined #a4")
    assert bob.expect("[error").startswith("[error too_many_rooms] You are in 5 rooms")


# ------------------------------------------------------------------------------------------- goodbyes


def test_a_client_dropped_for_its_send_queue_gets_whole_lines_and_a_bye(
    make_server: Callable[..., ServerThread],
) -> None:
    """Before: its queue was cleared with half a line at its head, so its last line was cut mid-JSON."""
    server = make_server(sendq=64 * 1024)
    swarm = Swarm(server.host, server.port)
    (talker,) = swarm.connect(1, "talker")
    swarm.register([talker], ["talker"])
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect((server.host, server.port))
    stalled.sendall(b"/format json\nstalled\n")
    swarm.run_until(lambda: any("stalled joined" in line for line in talker.lines), WAIT, "stalled to join")
    for i in range(0, 10_000, 100):  # 10 MB: more than the socket buffers and the queue hold
        talker.send(*[f"{j} {'x' * 997}" for j in range(i, i + 100)])
        swarm.sync([talker], f"t{i}")
        if any("stalled quit" in line for line in talker.lines):
            break
    swarm.run_until(lambda: any("stalled quit (send queue exceeded)" in line for line in talker.lines), WAIT,
                    "stalled to be dropped")
    stalled.settimeout(WAIT)
    data = b""
    while chunk := stalled.recv(1 << 20):
        data += chunk
    stalled.close()
    lines = data.decode().split("\n")
    assert lines[-1] == ""  # it ends with a newline: no half line
    events = [json.loads(line) for line in lines[:-1] if line.startswith("{")]  # every line is whole JSON
    assert events[-1]["type"] == "bye" and events[-1]["code"] == "sendq_exceeded"
    swarm.close_all()


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("line", "verb"), [
    ("/join", "join"), ("/history 9999", "history"), ("/format xml", "format"), ("/nick 9lives", "nick"),
    ("/join b@d", "join"), ("/frob", "frob"), ("/msg #bad! hi", "msg"), ("/history 5 before 99999999999999999999",
                                                                          "history"),
])
def test_every_refusal_names_its_verb(server: ServerThread, line: str, verb: str) -> None:
    """Before: `command` was null for every refusal raised while parsing."""
    client = server.client("alice", json_mode=True)
    client.send(line)
    error = client.expect_event("error")
    assert error["command"] == verb
    assert error["code"] in ("bad_argument", "unknown_command", "invalid_nick", "invalid_room")


def test_a_plain_line_refused_names_the_say_verb(server: ServerThread) -> None:
    client = server.client("alice", json_mode=True)
    client.send("/leave")
    client.expect_event("current")
    client.send("hello?")
    error = client.expect_event("error")
    assert (error["code"], error["command"]) == ("no_current_room", "say")


# ------------------------------------------------------------------------------------- storage behind


def test_a_far_behind_storage_stops_input_not_the_loop(make_server: Callable[..., ServerThread],
                                                       sqlite_db: str) -> None:
    """With the database locked, a client's flood fills the outbox past its limit; the loop stops reading input
    but still accepts and greets newcomers. Before: it stopped whole (`_wait_for_storage`) until the commit
    ended."""
    server = make_server(busy_timeout=8.0)
    flooder = server.client("flooder")
    flooder.sync()
    with sqlite_write_lock(sqlite_db):
        flooder.send("first")  # its commit now waits for the lock
        flooder.send(*[f"m{i}" for i in range(25_000)])  # more deliveries than may wait for one commit
        start = time.monotonic()
        newcomer = socket.create_connection((server.host, server.port), timeout=4)
        newcomer.settimeout(4)
        greeting = newcomer.recv(4096)  # the lock is still held: storage is behind, the loop is not
        greeted = time.monotonic() - start
        newcomer.close()
    assert greeting.startswith(b"*** Welcome to chat"), greeting
    record_figures("storage_behind", greeting_ms=round(greeted * 1000, 1))
    flooder.expect("flooder: m24999", timeout=60)  # and every line was handled once storage caught up
