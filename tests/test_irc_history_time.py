"""CHATHISTORY by time (`timestamp=` references) on rooms and private conversations, read from SQLite and
PostgreSQL; and SASL PLAIN with a long password in 400-byte chunks, and AUTHENTICATE again once logged in (907).
Real sockets, real databases."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

from chat.protocol.render import millis
from harness import IrcClient, ServerThread, wait_for

CAPS = ("draft/chathistory", "batch", "server-time", "message-tags", "echo-message")
PASSWORD = "correct horse battery"


def _times_and_texts(lines: list[str]) -> list[str]:
    """The texts of the PRIVMSG lines of a chathistory batch, in order."""
    return [line.rsplit(" :", 1)[1] for line in lines if " PRIVMSG " in line]


def _account(server: ServerThread, nick: str, password: str) -> None:
    native = server.client()
    native.register_account(nick, password)
    native.send("/quit")  # (else it holds the account)
    native.expect_closed()


def _history(c: IrcClient, request: str) -> list[str]:
    c.send(request)
    opened = c.expect(lambda line: " BATCH +" in line or " FAIL " in line)
    if " FAIL " in opened:
        return [opened]
    ref = opened.split(" BATCH +", 1)[1].split(" ")[0]
    return _times_and_texts(c.lines_until(lambda line: line.endswith(f"BATCH -{ref}")))


def _say_apart(c: IrcClient, target: str, texts: list[str]) -> list[str]:
    """Send each text, waiting for its echo and then for the clock to pass its millisecond (so that no two share
    one: server-time shows milliseconds); the time tags, in order."""
    times = []
    for text in texts:
        c.send(f"PRIVMSG {target} :{text}")
        echo = c.expect(lambda line, text=text: " PRIVMSG " in line and line.endswith(f" :{text}"))
        stamp = echo.split("time=", 1)[1].split(";")[0].split(" ")[0]
        times.append(stamp)
        shown = int(stamp[-4:-1])  # its millisecond
        wait_for(lambda shown=shown: millis(time.time()) % 1000 != shown, what="the next millisecond")
    return times


def test_chathistory_reads_a_room_by_time(make_server: Callable[..., ServerThread], any_db: str) -> None:
    server = make_server(db=any_db, irc_port=0)
    alice = IrcClient(*server.loop.door_address("irc"))
    alice.register("alice", CAPS)
    alice.send("JOIN #dev")
    alice.expect(" 366 alice #dev ")
    texts = [f"message {i}" for i in range(6)]
    t = _say_apart(alice, "#dev", texts)
    alice.close()
    server.stop()

    second = make_server(db=any_db, irc_port=0)  # every page from the database, not the room in memory
    bob = IrcClient(*second.loop.door_address("irc"))
    bob.register("bob", CAPS)
    assert _history(bob, f"CHATHISTORY BEFORE #dev timestamp={t[3]} 10") == texts[:3]
    assert _history(bob, f"CHATHISTORY BEFORE #dev timestamp={t[3]} 2") == texts[1:3]  # the newest two before
    assert _history(bob, f"CHATHISTORY AFTER #dev timestamp={t[3]} 10") == texts[4:]
    assert _history(bob, f"CHATHISTORY AFTER #dev timestamp={t[1]} 2") == texts[2:4]  # the oldest two after
    assert _history(bob, f"CHATHISTORY LATEST #dev timestamp={t[4]} 10") == texts[5:]
    assert _history(bob, f"CHATHISTORY BETWEEN #dev timestamp={t[1]} timestamp={t[4]} 10") == texts[2:4]
    assert _history(bob, f"CHATHISTORY BETWEEN #dev timestamp={t[4]} timestamp={t[1]} 10") == texts[2:4]
    assert _history(bob, f"CHATHISTORY AROUND #dev timestamp={t[2]} 4") == texts[1:5]
    assert _history(bob, "CHATHISTORY BEFORE #dev timestamp=2000-01-01T00:00:00.000Z 10") == []
    assert _history(bob, "CHATHISTORY AFTER #dev timestamp=2000-01-01T00:00:00.000Z 10") == texts
    assert _history(bob, "CHATHISTORY BEFORE #dev timestamp=2262-01-01T00:00:00.000Z 3") == texts[3:]
    assert _history(bob, "CHATHISTORY AFTER #dev timestamp=9999-12-31T23:59:59.999Z 10") == []
    for bad in ("timestamp=yesterday", "timestamp=", "timestamp=1969-12-31T23:59:59Z", "time=" + t[0],
                "timestamp=" + "9" * 60):
        assert " FAIL CHATHISTORY INVALID_PARAMS BEFORE " in _history(bob, f"CHATHISTORY BEFORE #dev {bad} 10")[0]
    mixed = _history(bob, f"CHATHISTORY BETWEEN #dev timestamp={t[1]} msgid=1 10")[0]
    assert " FAIL CHATHISTORY INVALID_PARAMS BETWEEN " in mixed
    bob.sync()  # and the connection is fine


def test_chathistory_reads_a_private_conversation_by_time(make_server: Callable[..., ServerThread],
                                                           any_db: str) -> None:
    server = make_server(db=any_db, irc_port=0)
    for nick in ("alice", "bob"):
        _account(server, nick, PASSWORD)
    alice = IrcClient(*server.loop.door_address("irc"))
    alice.register("alice", CAPS, sasl=("alice", PASSWORD))
    bob = IrcClient(*server.loop.door_address("irc"))
    bob.register("bob", CAPS, sasl=("bob", PASSWORD))
    texts = [f"dm {i}" for i in range(4)]
    t = _say_apart(alice, "bob", texts)
    assert _history(bob, f"CHATHISTORY BEFORE alice timestamp={t[2]} 10") == texts[:2]
    assert _history(bob, f"CHATHISTORY AFTER alice timestamp={t[0]} 10") == texts[1:]
    assert _history(alice, f"CHATHISTORY BETWEEN bob timestamp={t[0]} timestamp={t[3]} 10") == texts[1:3]
    carol = IrcClient(*server.loop.door_address("irc"))
    carol.register("carol", CAPS)  # a guest: no private history, by time or not
    assert " FAIL CHATHISTORY " in _history(carol, f"CHATHISTORY AFTER alice timestamp={t[0]} 10")[0]


def test_sasl_plain_takes_a_long_password_in_400_byte_chunks_and_refuses_a_second_login(
        make_server: Callable[..., ServerThread]) -> None:
    server = make_server(irc_port=0)
    long_password = "bar" * 197 + "x"  # 592 characters: 800 bytes of base64, two full chunks and then "+"
    _account(server, "foo", long_password)
    c = IrcClient(*server.loop.door_address("irc"))
    c.send("CAP LS 302", "CAP REQ :sasl", "AUTHENTICATE PLAIN")
    c.expect("AUTHENTICATE +")
    payload = base64.b64encode(b"foo\0foo\0" + long_password.encode()).decode()
    assert len(payload) == 800
    c.send(f"AUTHENTICATE {payload[:400]}", f"AUTHENTICATE {payload[400:]}", "AUTHENTICATE +")
    c.expect(" 903 * :SASL authentication successful")
    c.send("AUTHENTICATE PLAIN")
    c.expect(" 907 * :You have already authenticated using SASL")
    c.send("NICK foo", "USER foo 0 * :Foo", "CAP END")
    c.expect(" 001 foo ")
    c.send("AUTHENTICATE PLAIN")  # after registration too
    c.expect(" 907 foo :You have already authenticated using SASL")
    c.send("WHOIS foo")
    c.expect(" 330 foo foo foo ")  # still logged in as before


def test_chathistory_targets_lists_rooms_and_conversations_by_their_latest_message(
        make_server: Callable[..., ServerThread], any_db: str) -> None:
    server = make_server(db=any_db, irc_port=0)  # (#lobby: no messages, not listed)
    for nick in ("alice", "bob", "carol"):
        _account(server, nick, PASSWORD)
    alice, bob, carol = (IrcClient(*server.loop.door_address("irc")) for _ in range(3))
    for c, nick in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
        c.register(nick, (*CAPS, "labeled-response"), sasl=(nick, PASSWORD))
    alice.send("JOIN #one", "JOIN #two")
    alice.expect(" 366 alice #two ")
    t = [*_say_apart(alice, "#one", ["in one"]), *_say_apart(alice, "bob", ["to bob"]),
         *_say_apart(alice, "#two", ["in two"]), *_say_apart(alice, "carol", ["to carol"])]

    def targets(request: str) -> list[str]:
        alice.send(request)
        opened = alice.expect(lambda line: " BATCH +" in line and "draft/chathistory-targets" in line)
        ref = opened.split(" BATCH +", 1)[1].split(" ")[0]
        return [line.split(" TARGETS ", 1)[1] for line in alice.lines_until(lambda line: line.endswith(f"-{ref}"))
                if " CHATHISTORY TARGETS " in line]

    every = "timestamp=2020-01-01T00:00:00.000Z timestamp=2262-01-01T00:00:00.000Z"
    assert targets(f"CHATHISTORY TARGETS {every} 100") == [f"#one {t[0]}", f"bob {t[1]}", f"#two {t[2]}",
                                                           f"carol {t[3]}"]
    assert targets(f"CHATHISTORY TARGETS {every} 2") == [f"#one {t[0]}", f"bob {t[1]}"]
    assert targets(f"CHATHISTORY TARGETS timestamp={t[3]} timestamp={t[0]} 100") == [f"bob {t[1]}", f"#two {t[2]}"]
    _say_apart(alice, "#one", ["said again"])  # #one's latest is now past the window: it is left out
    assert targets(f"CHATHISTORY TARGETS timestamp=2020-01-01T00:00:00Z timestamp={t[3]} 100") == [
        f"bob {t[1]}", f"#two {t[2]}"]
    alice.send(f"CHATHISTORY TARGETS msgid=1 {every.split()[1]} 10")
    alice.expect(" FAIL CHATHISTORY INVALID_PARAMS TARGETS ")
    bob.send(f"CHATHISTORY TARGETS {every} 100")  # bob's: his conversation with alice, none of her rooms
    bob.expect(lambda line: " CHATHISTORY TARGETS alice " in line)
    bob.expect(lambda line: " BATCH -" in line)
    assert not any(" TARGETS #" in line for line in bob.seen)
    native = server.client("dave")  # a guest, natively: its rooms only
    native.send("/join two", "/targets")
    assert native.expect("*** Latest messages") == "*** Latest messages, oldest first: #two"


def test_endless_sasl_chunks_fail_the_login_and_nothing_more(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(irc_port=0)
    c = IrcClient(*server.loop.door_address("irc"))
    c.send("CAP LS 302", "CAP REQ :sasl", "AUTHENTICATE PLAIN")
    c.expect("AUTHENTICATE +")
    c.send(*(["AUTHENTICATE " + "eHh4" * 100] * 5))  # 400 bytes each: past what any PLAIN login needs
    c.expect(" 904 * :SASL authentication failed")
    c.send("AUTHENTICATE " + "x" * 401)  # one line too long (a new exchange is not open: 908/904 first)
    c.send("NICK late", "USER late 0 * :Late", "CAP END")
    c.expect(" 001 late ")  # the connection is fine, and registers
