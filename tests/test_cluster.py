"""Several `chat serve --cluster` nodes on one PostgreSQL database (docs/CLUSTER.md): real processes on loopback
ports, a database of their own per test (dropped after), real clients in JSON mode."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from harness.clients import LineClient, wait_for
from harness.irc import IrcClient
from harness.process import ServeProcess, chat_command

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

NODE_TIMEOUT = 3  # seconds: the bound below is this plus a heartbeat plus a reaping round
GONE_BOUND = NODE_TIMEOUT + 2 * 2 + 3


@pytest.fixture
def nodes(cluster_postgres_db: str) -> Iterator[Any]:
    """`start(name)` runs a node; all are killed at the end."""
    started: list[ServeProcess] = []

    def start(name: str, *extra: str, db: str | None = None) -> ServeProcess:
        node = ServeProcess(db or cluster_postgres_db, "--cluster", "--node", name, "--node-timeout", str(NODE_TIMEOUT),
                            "--rate", "0", "--log-level", "warning", *extra)
        started.append(node)
        return node

    start.db = cluster_postgres_db  # type: ignore[attr-defined]
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


def backlog(c: LineClient, room: str) -> list[dict[str, Any]]:
    """The messages of the next backlog or history page for `room` (JSON: messages, then history_end)."""
    lines = c.lines_until(lambda line: '"type":"history_end"' in line and f'"room":"{room}"' in line)
    return [e for e in map(json.loads, (x for x in lines if x.startswith("{")))
            if e["type"] == "message" and e.get("history") and e["room"] == room]


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


def test_a_backlog_on_node_c_holds_what_was_said_on_node_a_a_moment_ago(nodes: Any) -> None:
    a, c = nodes("a"), nodes("c")
    ann = client(a, "ann")
    ann.send("/join #news", "first", "second")
    ann.expect_event("message", text="second")
    cid = client(c, "cid")
    cid.send("/join #news")
    assert [m["text"] for m in backlog(cid, "news")] == ["first", "second"]
    ann.send("third")  # and live after the backlog, from the other node
    assert cid.expect_event("message", room="news")["text"] == "third"


def test_two_nodes_racing_for_one_nick_exactly_one_wins(nodes: Any) -> None:
    a, b = nodes("a"), nodes("b")
    for round_ in range(5):
        nick = f"racer{round_}"
        x = LineClient(a.host, a.port, json_mode=True)
        y = LineClient(b.host, b.port, json_mode=True)
        barrier = threading.Barrier(2)

        def claim(c: LineClient, barrier: threading.Barrier, nick: str) -> None:
            barrier.wait()
            c.send(nick)

        threads = [threading.Thread(target=claim, args=(c, barrier, nick)) for c in (x, y)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        outcomes = []
        for c in (x, y):
            line = c.expect(lambda line: '"type":"welcome"' in line or '"code":"nick_taken"' in line)
            outcomes.append("won" if '"welcome"' in line else "lost")
        assert sorted(outcomes) == ["lost", "won"], outcomes
        x.close()
        y.close()


def test_a_nick_is_free_again_on_another_node_once_its_holder_quits(nodes: Any) -> None:
    a, b = nodes("a"), nodes("b")
    ann = client(a, "ann")
    other = LineClient(b.host, b.port, json_mode=True)
    other.send("ann")
    other.expect_event("error", code="nick_taken")
    ann.send("/quit")
    ann.expect_closed()
    deadline = time.monotonic() + 20
    while True:  # the quit's presence row goes with its commit
        other.send("ann")
        line = other.expect(lambda line: '"type":"welcome"' in line or '"code":"nick_taken"' in line)
        if '"welcome"' in line:
            break
        assert time.monotonic() < deadline, "the nick stayed taken after its holder quit"
        time.sleep(0.1)


def test_kill_9_of_a_node_while_its_clients_send(nodes: Any) -> None:
    a, b, c = nodes("a"), nodes("b"), nodes("c")
    victims = [client(a, f"va{i}") for i in range(3)]
    bob, cid = client(b, "bob"), client(c, "cid")
    for x in (bob, cid):
        wait_members(x, "lobby", {"va0", "va1", "va2", "bob", "cid"})
    stop = threading.Event()
    echoed: dict[str, list[str]] = {v.nick: [] for v in victims}

    def send(v: LineClient) -> None:
        i = 0
        while not stop.is_set():
            try:
                v.send(f"{v.nick} says {i}")
            except OSError:
                return
            i += 1
            time.sleep(0.005)

    def read_echoes(v: LineClient) -> None:
        while True:  # what a sender was echoed is what the server committed (delivered means stored)
            try:
                line = v._next_line(time.monotonic() + 30)
            except (TimeoutError, OSError):
                return
            if line is None:
                return
            if line.startswith("{") and '"type":"message"' in line:
                event = json.loads(line)
                if event["nick"] == v.nick:
                    echoed[v.nick].append(event["text"])

    threads = [threading.Thread(target=f, args=(v,), daemon=True) for v in victims for f in (send, read_echoes)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(10)
    killed_at = time.monotonic()
    stop.set()
    for t in threads:
        t.join(35)
    assert all(echoed.values()), "the victims sent nothing before the kill"
    # every survivor announces the dead node's users gone within the bound
    for x in (bob, cid):
        gone: set[str] = set()
        while gone != {v.nick for v in victims}:
            remaining = GONE_BOUND - (time.monotonic() - killed_at)
            assert remaining > 0, f"{x.nick} heard only {gone} quit within {GONE_BOUND} s"
            gone.add(x.expect_event("quit", timeout=remaining)["nick"])
        wait_members(x, "lobby", {"bob", "cid"})
    # everything echoed to a sender is stored, and was delivered on the surviving nodes
    engine = create_engine(nodes.db)
    with engine.connect() as conn:
        stored = set(conn.execute(text("SELECT text FROM messages WHERE sender LIKE 'va%'")).scalars())
    engine.dispose()
    for x in (bob, cid):
        got = {json.loads(line)["text"] for line in x.seen
               if line.startswith("{") and '"type":"message"' in line and '"nick":"va' in line}
        for nick, texts in echoed.items():
            missing = [t for t in texts if t not in stored or t not in got]
            assert not missing, f"{nick}'s echoed {missing[:3]} are not stored or not delivered to {x.nick}"


def test_a_listen_connection_killed_by_postgresql_loses_no_delivery(nodes: Any) -> None:
    a, b = nodes("a"), nodes("b")
    ann, bob = client(a, "ann"), client(b, "bob")
    wait_members(bob, "lobby", {"ann", "bob"})
    engine = create_engine(nodes.db, isolation_level="AUTOCOMMIT")
    stop = threading.Event()

    def talk() -> None:
        i = 0
        while not stop.is_set():
            ann.send(f"m{i}")
            i += 1
            time.sleep(0.01)
        ann.send("last")

    talker = threading.Thread(target=talk)
    talker.start()
    def kill_listener() -> bool:
        with engine.connect() as conn:
            return bool(conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                                          "application_name = 'chat-listen b'")).scalar())

    for _ in range(3):  # kill b's LISTEN connection from the database's side, as soon as it is back
        time.sleep(0.3)
        wait_for(kill_listener, timeout=20, what="b's LISTEN connection")
    stop.set()
    talker.join()
    engine.dispose()
    texts: list[str] = []
    while not texts or texts[-1] != "last":
        texts.append(bob.expect_event("message", timeout=20)["text"])
    assert texts == [*(f"m{i}" for i in range(len(texts) - 1)), "last"]


def test_history_pages_across_nodes(nodes: Any) -> None:
    a, b = nodes("a"), nodes("b")
    ann, bob = client(a, "ann"), client(b, "bob")
    wait_members(ann, "lobby", {"ann", "bob"})
    for i in range(10):  # turn by turn, each after seeing the other's
        speaker, listener = (ann, bob) if i % 2 == 0 else (bob, ann)
        speaker.send(f"turn {i}")
        listener.expect_event("message", text=f"turn {i}")
    c = nodes("c")
    cid = LineClient(c.host, c.port, json_mode=True)
    cid.send("cid")
    shown = backlog(cid, "lobby")  # a newcomer's backlog: all ten, in order
    assert [m["text"] for m in shown] == [f"turn {i}" for i in range(10)]
    cid.send(f"/history 4 before {shown[-1]['id'] + 1}")
    page = backlog(cid, "lobby")
    assert [m["text"] for m in page] == [f"turn {i}" for i in range(6, 10)]
    cid.send(f"/history 4 before {page[0]['id']}")
    page = backlog(cid, "lobby")
    assert [m["text"] for m in page] == [f"turn {i}" for i in range(2, 6)]
    ids = [m["id"] for m in page]
    assert ids == sorted(ids)


def test_cluster_is_refused_on_sqlite(tmp_path: Any) -> None:
    result = subprocess.run([*chat_command(), "serve", "--db", str(tmp_path / "c.sqlite"), "--port", "0",
                             "--cluster"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--cluster needs PostgreSQL" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_single_server_cannot_start_beside_clustered_nodes(nodes: Any) -> None:
    nodes("a")
    result = subprocess.run([*chat_command(), "serve", "--db", nodes.db, "--port", "0"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "another chat server is using the database" in result.stderr


def test_a_private_message_reaches_its_nick_on_another_node(nodes: Any) -> None:
    a, b = nodes("a"), nodes("b")
    ann, bob = client(a, "ann"), client(b, "bob")
    ann.send("/msg bob psst")
    echo = ann.expect_event("private")
    got = bob.expect_event("private")
    assert (got["nick"], got["to"], got["text"], got["id"]) == ("ann", "bob", "psst", echo["id"])
    ann.send("/msg nobody hello")
    ann.expect_event("error", code="no_such_nick")


def test_an_account_is_logged_in_on_one_node_at_a_time(nodes: Any) -> None:
    a, b = nodes("a", "--password-profile", "test"), nodes("b", "--password-profile", "test")
    ann = client(a, "ann")
    ann.send("/register secret words")
    ann.expect_event("account", change="registered")
    other = client(b, "guest1")
    other.send("/login ann secret words")
    other.expect_event("error", code="already_logged_in")
    ann.send("/quit")
    ann.expect_closed()
    deadline = time.monotonic() + 20
    while True:  # once its holder is gone, the account may log in on the other node
        other.send("/login ann secret words")
        line = other.expect(lambda line: '"change":"logged_in"' in line or '"code":"already_logged_in"' in line)
        if "logged_in\"" in line and "already" not in line:
            break
        assert time.monotonic() < deadline, "the account stayed logged in after its holder quit"
        time.sleep(0.2)


def test_a_node_stopped_cleanly_announces_its_users_gone_at_once(nodes: Any) -> None:
    a, b = nodes("a"), nodes("b")
    ann, bob = client(a, "ann"), client(b, "bob")
    wait_members(bob, "lobby", {"ann", "bob"})
    assert a.terminate() == 0
    ann.close()
    quit_ = bob.expect_event("quit", nick="ann", timeout=20)
    assert "shut down" in quit_["reason"]  # said by the node itself, not its reaper
    wait_members(bob, "lobby", {"bob"})


def irc_port(node: ServeProcess) -> int:
    found = re.search(r":(\d+) \(IRC\)", node.banner)
    assert found, node.banner
    return int(found.group(1))


def test_rooms_and_whois_are_cluster_wide(nodes: Any) -> None:
    a, b = nodes("a", "--irc-port", "0"), nodes("b", "--password-profile", "test")
    ann = client(a, "ann")
    bob, bea = client(b, "bob"), client(b, "bea")
    bob.send("/register secret words")  # so that #bees is his, and its modes are stored
    bob.expect_event("account", change="registered")
    for x in (bob, bea):  # a room whose members are all on node b
        x.send("/join #bees")
        x.expect_event("joined", room="bees")
    bob.send("/topic #bees buzz")
    bob.expect_event("topic", room="bees")
    deadline = time.monotonic() + 20
    while True:  # node a has nobody in #bees, yet lists it with b's two members
        ann.send("/rooms")
        listed = {r["room"]: r for r in ann.expect_event("rooms")["rooms"]}
        if "bees" in listed and listed["bees"]["members"] == 2:
            break
        assert time.monotonic() < deadline, f"a lists {listed}"
        time.sleep(0.1)
    assert listed["bees"]["topic"] == "buzz"
    assert listed["lobby"]["members"] == 3
    ann.send("/whois bob")
    whois = ann.expect_event("whois", nick="bob")
    assert whois["online"] is True
    assert sorted(whois["rooms"]) == ["bees", "lobby"]
    bob.send("/mode #bees +i")  # an invite-only room of node b: hidden from outsiders on node a too
    bob.expect_event("mode", room="bees")
    deadline = time.monotonic() + 20
    while True:
        ann.send("/rooms")
        rooms = ann.expect_event("rooms")
        if "bees" not in {r["room"] for r in rooms["rooms"]}:
            break
        assert time.monotonic() < deadline, "a still lists the invite-only #bees"
        time.sleep(0.1)
    assert rooms["total"] == 1
    ann.send("/whois bob")
    assert ann.expect_event("whois", nick="bob")["rooms"] == ["lobby"]
    irc = IrcClient(a.host, irc_port(a))  # the IRC door's LIST and WHOIS are the same services
    irc.register("ivy")
    irc.send("WHOIS bea")
    assert "bea" in irc.expect(" 311 ")
    assert "#lobby" in irc.expect(" 319 ")
    irc.expect(" 318 ")
    irc.send("LIST")
    assert " #lobby 4 " in irc.expect(" 322 ")
    irc.expect(" 323 ")
    irc.close()


def test_who_with_a_mask_is_cluster_wide(nodes: Any) -> None:
    a, b = nodes("a", "--irc-port", "0"), nodes("b")
    ann, _bob, bea = client(a, "ann"), client(b, "bob"), client(b, "bea")
    bea.send("/leave #lobby", "/join #bees")  # she shares no room with node a's people: a wildcard misses her
    bea.expect_event("joined", room="bees")
    irc = IrcClient(a.host, irc_port(a))  # WHO with a mask is IRC's (the native protocol has no syntax for it)
    irc.register("ivy")
    wait_members(ann, "lobby", {"ann", "bob", "ivy"})

    def who(mask: str) -> list[str]:
        irc.send(f"WHO {mask}")
        lines = irc.lines_until(" 315 ")
        return [x.split()[7] for x in lines if " 352 " in x]

    assert who("b*") == ["bob"]  # a member of the lobby on node b
    assert who("bea") == ["bea"]  # an exact nick: anyone online, on any node
    assert who("nobody") == []
    assert who("*") == ["ann", "bob", "ivy"]
    irc.close()


def test_moderation_reaches_the_other_nodes_live(nodes: Any) -> None:
    a, b = nodes("a", "--password-profile", "test"), nodes("b", "--password-profile", "test")
    olga = client(a, "olga")
    olga.send("/register secret words")
    olga.expect_event("account", change="registered")
    olga.send("/join #den")  # hers: her acts are stored, and told to the other nodes as room events
    olga.expect_event("joined", room="den")
    bob, cat, dan = client(b, "bob"), client(b, "cat"), client(b, "dan")
    for x in (bob, cat, dan):
        x.send("/join #den")
        x.expect_event("joined", room="den")
    wait_members(olga, "den", {"olga", "bob", "cat", "dan"})
    olga.send("/mode #den +m")
    assert dan.expect_event("mode", room="den", mode="+m")["nick"] == "olga"
    bob.send("/msg #den may I?")  # node b applied the setting to its copy of the room
    bob.expect_event("error", code="moderated")
    olga.send("/mode #den -m")
    dan.expect_event("mode", room="den", mode="-m")
    olga.send("/kick #den bob out")
    kick = cat.expect_event("kick", room="den")  # a kick, not a part
    assert (kick["nick"], kick["by"], kick["reason"]) == ("bob", "olga", "out")
    bob.expect_event("kick", room="den", nick="bob")
    bob.send("/msg #den still here?")  # node b removed its member
    bob.expect_event("error", code="not_in_room")
    wait_members(olga, "den", {"olga", "cat", "dan"})
    wait_members(dan, "den", {"olga", "cat", "dan"})
    olga.send("/ban #den cat")
    assert dan.expect_event("mode", room="den", mode="+b")["target"] == "cat"
    assert cat.expect_event("kick", room="den", nick="cat")["reason"] == "banned"
    cat.send("/join #den")  # refused by node b's copy of the room (dan keeps it in b's memory)
    cat.expect_event("error", code="banned")
    olga.send("/mode #den +i")
    dan.expect_event("mode", room="den", mode="+i")
    eve = client(a, "eve")
    olga.send("/invite eve #den")
    eve.expect_event("invite", room="den")
    eve.send("/quit")
    eve.expect_closed()
    other = client(b, "gus")
    other.send("/join #den")
    other.expect_event("error", code="invite_only")
    deadline = time.monotonic() + 20
    while True:  # the nick is free once a's quit is committed; eve comes back on node b, invited there too
        eve = LineClient(b.host, b.port, json_mode=True)
        eve.send("eve")
        line = eve.expect(lambda line: '"type":"joined"' in line or '"code":"nick_taken"' in line)
        if '"joined"' in line:
            break
        eve.close()
        assert time.monotonic() < deadline, "eve's nick stayed taken"
        time.sleep(0.1)
    eve.send("/join #den")
    eve.expect_event("joined", room="den")
    olga.send("/topic #den quiet please")
    assert dan.expect_event("topic", room="den")["topic"] == "quiet please"


def test_op_voice_and_invite_reach_a_target_on_another_node(nodes: Any) -> None:
    a, b = nodes("a", "--password-profile", "test"), nodes("b", "--password-profile", "test")
    olga, ada = client(a, "olga"), client(b, "ada")
    for x in (olga, ada):
        x.send("/register secret words")
        x.expect_event("account", change="registered")
    olga.send("/join #den")  # hers: her acts are stored
    olga.expect_event("joined", room="den")
    gus, ivan = client(b, "gus"), client(b, "ivan")  # guests of node b
    for x in (ada, gus):
        x.send("/join #den")
        x.expect_event("joined", room="den")
    wait_members(olga, "den", {"olga", "ada", "gus"})
    ada.send("/mode #den +t")
    ada.expect_event("error", code="not_op")
    olga.send("/op #den ada")  # an account of node b: a stored op, known on every node
    assert gus.expect_event("mode", room="den", mode="+o")["target"] == "ada"
    ada.send("/mode #den +m")  # node b's copy of the room knows her as an op
    assert olga.expect_event("mode", room="den", mode="+m")["nick"] == "ada"
    gus.send("/msg #den may I?")
    gus.expect_event("error", code="moderated")
    olga.send("/mode #den +v gus")  # a guest of node b: a session voice, which node b gives its member
    assert gus.expect_event("mode", room="den", mode="+v")["target"] == "gus"
    gus.send("/msg #den thanks")
    assert olga.expect_event("message", room="den")["text"] == "thanks"
    olga.send("/mode #den +i")
    gus.expect_event("mode", room="den", mode="+i")
    ivan.send("/join #den")
    ivan.expect_event("error", code="invite_only")
    olga.send("/invite ivan #den")  # not in the room, on node b: told there, and let in there
    assert olga.expect_event("invite", room="den")["target"] == "ivan"
    assert ivan.expect_event("invite", room="den")["nick"] == "olga"
    ivan.send("/join #den")
    ivan.expect_event("joined", room="den")
    cara = client(nodes("c"), "cara")  # node c has nobody in #den: she is not told, but the stored invite admits her
    olga.send("/invite cara #den")
    assert olga.expect_event("invite", room="den")["target"] == "cara"
    cara.send("/join #den")
    cara.expect_event("joined", room="den")
    olga.send("/mode #den -v gus", "/deop #den ada")  # and taken back the same ways
    gus.expect_event("mode", room="den", mode="-o")
    gus.send("/msg #den again?")
    gus.expect_event("error", code="moderated")
    ada.send("/mode #den -m")
    ada.expect_event("error", code="not_op")


def test_a_private_message_sent_while_its_node_is_not_listening_is_delivered_when_it_catches_up(nodes: Any) -> None:
    a, b = nodes("a"), nodes("b")
    ann, bob = client(a, "ann"), client(b, "bob")
    ann.send("/msg bob before")
    assert bob.expect_event("private")["text"] == "before"
    engine = create_engine(nodes.db, isolation_level="AUTOCOMMIT")

    def kill_listener() -> bool:
        with engine.connect() as conn:
            return bool(conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                                          "application_name = 'chat-listen b'")).scalar())

    sent = []
    for round_ in range(3):  # b's listener is gone for at least half a second each time: some land meanwhile
        wait_for(kill_listener, timeout=20, what="b's LISTEN connection")
        for i in range(10):
            sent.append(f"r{round_} m{i}")
            ann.send(f"/msg bob {sent[-1]}")
            time.sleep(0.05)
    engine.dispose()
    got = [bob.expect_event("private", timeout=20)["text"] for _ in sent]
    assert got == sent  # every one, once, in order
    ann.send("/msg bob after")
    assert bob.expect_event("private")["text"] == "after"


def test_room_events_are_pruned_once_no_node_needs_them(nodes: Any) -> None:
    a, b = nodes("a", "--events-kept", "1"), nodes("b", "--events-kept", "1")
    ann, bob = client(a, "ann"), client(b, "bob")
    wait_members(bob, "lobby", {"ann", "bob"})
    for i in range(5):
        ann.send(f"old {i}")
        bob.expect_event("message", text=f"old {i}")
    ann.send("/msg bob old private")
    bob.expect_event("private", text="old private")
    engine = create_engine(nodes.db)

    def counts() -> tuple[int, int, int]:
        with engine.connect() as conn:
            return (conn.execute(text("SELECT count(*) FROM room_events")).scalar_one(),
                    conn.execute(text("SELECT count(*) FROM node_inbox")).scalar_one(),
                    conn.execute(text("SELECT count(*) FROM nodes WHERE caught_up IS NOT NULL")).scalar_one())

    assert counts()[0] >= 5
    wait_for(lambda: counts() == (0, 0, 2), timeout=30, what="the old room events pruned")
    with engine.connect() as conn:  # the history is untouched
        assert conn.execute(text("SELECT count(*) FROM messages WHERE text LIKE 'old %'")).scalar_one() == 6
    engine.dispose()
    ann.send("new")  # and the nodes carry on
    bob.expect_event("message", text="new")
    cid = client(b, "cid")
    assert [m["text"] for m in backlog(cid, "lobby")][-2:] == ["old 4", "new"]


def test_a_reaped_node_that_comes_back_ends_its_sessions_and_starts_clean(nodes: Any) -> None:
    a, b = nodes("a"), nodes("b")
    ann, bob = client(a, "ann"), client(b, "bob")
    wait_members(bob, "lobby", {"ann", "bob"})
    a.proc.send_signal(signal.SIGSTOP)
    try:
        assert "stopped answering" in bob.expect_event("quit", nick="ann", timeout=GONE_BOUND)["reason"]
        wait_members(bob, "lobby", {"bob"})
        taker = client(b, "ann")  # the nick is free: someone on b takes it while a is still paused
    finally:
        a.proc.send_signal(signal.SIGCONT)
    bye = ann.expect_event("bye", timeout=20)
    assert bye["code"] == "node_lost"
    ann.expect_closed()
    wait_members(bob, "lobby", {"ann", "bob"})  # b's ann is not the one a forgot: nobody announces her gone
    assert not [line for line in bob.seen if '"type":"quit"' in line and '"nick":"ann"' in line][1:]
    assert taker.nick == "ann"
    deadline = time.monotonic() + 20
    while True:  # a takes clients again, and is a node like the others once its row is back
        try:
            amy = client(a, "amy")
            break
        except (AssertionError, OSError, TimeoutError):
            assert time.monotonic() < deadline, "node a did not take clients again"
            time.sleep(0.2)
    wait_members(bob, "lobby", {"ann", "amy", "bob"})
    amy.send("I am back")
    bob.expect_event("message", text="I am back")
    bob.send("/msg amy welcome")
    amy.expect_event("private", text="welcome")


@contextmanager
def proxy_to_postgres(db: str) -> Iterator[tuple[str, Any]]:
    """The database's URL through a socat proxy on a free port, and `cut(on)`: kill the proxy (every connection
    through it drops, new ones are refused) or start it again on the same port."""
    url = make_url(db)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs: list[subprocess.Popen[bytes]] = []

    def cut(on: bool) -> None:
        if not on:
            proc = procs.pop()
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            return
        procs.append(subprocess.Popen(["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
                                       f"TCP:{url.host or '127.0.0.1'}:{url.port or 5432}"], start_new_session=True))

        def listening() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, timeout=10, what="the socat proxy")

    cut(True)
    try:
        yield url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False), cut
    finally:
        while procs:
            cut(False)


def test_a_node_that_loses_the_database_refuses_messages_keeps_its_clients_and_recovers(nodes: Any) -> None:
    with proxy_to_postgres(nodes.db) as (through_proxy, cut):
        a = nodes("a", "--node-timeout", "60", db=through_proxy)  # (not reaped meanwhile)
        b = nodes("b", "--node-timeout", "60")
        ann, bob = client(a, "ann"), client(b, "bob")
        wait_members(bob, "lobby", {"ann", "bob"})
        ann.send("before")
        bob.expect_event("message", text="before")
        cut(False)
        ann.send("while cut")
        ann.expect_event("error", code="not_delivered", timeout=30)
        ann.send("/ping still here")  # its connection is kept
        ann.expect_event("pong", timeout=20)
        cut(True)
        deadline = time.monotonic() + 30
        i = 0
        while True:  # it recovers by itself: a message goes through again
            ann.send(f"after {i}")
            echo = f'"text":"after {i}"'
            line = ann.expect(lambda line, echo=echo: echo in line or '"code":"not_delivered"' in line, timeout=20)
            if '"not_delivered"' not in line:
                break
            assert time.monotonic() < deadline, "node a did not recover"
            i += 1
            time.sleep(0.3)
        assert bob.expect_event("message", text=f"after {i}", timeout=20)
        assert not [line for line in bob.seen if "while cut" in line]
