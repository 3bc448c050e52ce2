"""End to end: the real server on 127.0.0.1:0, real sockets, a real SQLite file (and PostgreSQL where asked)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import pytest

from harness import LineClient, ServerThread


@pytest.fixture
def server(make_server: Callable[..., ServerThread], any_db: str) -> ServerThread:
    """These tests run on SQLite, and again on PostgreSQL when one is reachable."""
    return make_server(db=any_db)


def test_the_tutorial_flow_greets_asks_for_a_name_and_welcomes(server: ServerThread) -> None:
    alice = server.client()
    assert "Type a nickname" in alice.expect("Welcome to chat")
    alice.send("alice")
    lines = alice.lines_until("You joined #lobby")
    assert any("Welcome, alice!" in line and "/help" in line and "/quit" in line for line in lines)


def test_two_people_chat_and_see_each_other_join_and_leave(server: ServerThread) -> None:
    alice = server.client("alice")
    bob = server.client("bob")
    assert alice.expect("bob joined") == "[#lobby] *** bob joined"
    bob.send("hello alice")
    assert alice.expect("hello alice") == "[#lobby] bob: hello alice"
    assert bob.expect("hello alice") == "[#lobby] bob: hello alice"  # the echo is the delivery receipt
    alice.send("/me waves")
    assert bob.expect("waves") == "[#lobby] * alice waves"
    bob.send("/quit off to lunch")
    assert "Goodbye" in bob.expect_closed()[-1]
    assert alice.expect("bob quit") == "*** bob quit (off to lunch)"


@pytest.mark.parametrize("goodbye", ["/quit", "/DISCONNECT", "!DISCONNECT", "/exit"])
def test_every_way_to_leave_says_goodbye_and_closes(server: ServerThread, goodbye: str) -> None:
    alice = server.client("alice")
    bob = server.client("bob")
    bob.send(goodbye)
    closing = bob.expect_closed()
    assert closing[-1].startswith("*** Goodbye")
    alice.expect("*** bob quit")
    # the nick is free again at once
    server.client("bob")


def test_a_client_that_drops_without_a_word_frees_its_nick_and_rooms_are_told(server: ServerThread) -> None:
    alice = server.client("alice")
    bob = server.client("bob")
    bob.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
    bob.close()
    assert "bob quit" in alice.expect("bob quit")
    server.client("bob")


def test_a_half_closed_client_still_gets_its_answers(server: ServerThread) -> None:
    """`printf 'bob\\nhello\\n' | nc` sends, then EOF: it must still see its lines answered."""
    alice = server.client("alice")
    bob = LineClient(server.host, server.port)
    bob.send("bob", "hi from a pipe", "/who")
    bob.sock.shutdown(socket.SHUT_WR)
    lines = bob.expect_closed()
    assert "[#lobby] bob: hi from a pipe" in lines
    assert any("members: alice, bob" in line for line in lines)
    alice.expect("[#lobby] bob: hi from a pipe")
    alice.expect("bob quit (connection closed)")


def test_rooms_are_kept_apart(server: ServerThread) -> None:
    alice, bob, carol = server.client("alice"), server.client("bob"), server.client("carol")
    alice.send("/join dev")
    alice.expect("You joined #dev")
    bob.send("/join dev")
    bob.expect("You joined #dev")
    alice.send("dev only")
    assert bob.expect("dev only") == "[#dev] alice: dev only"
    carol.send("lobby only")
    assert alice.expect("lobby only") == "[#lobby] carol: lobby only"  # alice is in both rooms
    carol.sync()
    bob.expect("lobby only")  # bob is still in the lobby too
    bob.send("/leave lobby")
    bob.expect("[#lobby] *** bob left")
    carol.send("after bob left")
    alice.expect("after bob left")
    bob.sync()
    assert not any("after bob left" in line for line in bob.seen)
    assert not any("dev only" in line for line in carol.seen)


def test_msg_to_a_room_you_are_in_without_switching(server: ServerThread) -> None:
    alice, bob = server.client("alice"), server.client("bob")
    for c in (alice, bob):
        c.send("/join dev")
        c.expect("You joined #dev")
    alice.send("/msg lobby in the lobby")  # without the #, lobby is a nick
    assert alice.expect("[error").startswith("[error no_such_nick]")
    alice.send("/msg #lobby in the lobby")
    bob.expect("[#lobby] alice: in the lobby")
    alice.send("current is still dev")
    bob.expect("[#dev] alice: current is still dev")
    alice.send("/me #lobby waves at the lobby")
    bob.expect("[#lobby] * alice waves at the lobby")
    alice.send("/me #nowhere waves")
    assert alice.expect("[error").startswith("[error not_in_room]")


def test_private_messages(server: ServerThread) -> None:
    alice, bob, carol = server.client("alice"), server.client("bob"), server.client("carol")
    alice.send("/msg bob psst, bob")
    assert bob.expect("psst") == "[private] alice -> bob: psst, bob"
    assert alice.expect("psst") == "[private] alice -> bob: psst, bob"
    carol.sync()
    assert not any("psst" in line for line in carol.seen)
    alice.send("/msg BOB case does not matter")
    bob.expect("case does not matter")


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("/nick bob", "nick_taken"),
        ("/nick BOB", "nick_taken"),
        ("/nick 1nvalid", "invalid_nick"),
        ("/msg nobody hi", "no_such_nick"),
        ("/topic #nowhere", "no_such_room"),
        ("/history nowhere", "no_such_room"),
        ("/leave dev", "not_in_room"),
        ("/msg #dev hi", "not_in_room"),
        ("/topic #dev sneaky", "not_in_room"),
        ("/join b@d", "invalid_room"),
        ("/frob", "unknown_command"),
        ("/join", "bad_argument"),
        ("/history 100000", "bad_argument"),
    ],
)
def test_every_refusal_is_one_error_line_and_the_connection_stays(server: ServerThread, line: str,
                                                                  code: str) -> None:
    bob = server.client("bob")
    bob.send("/join dev")
    bob.sync()
    alice = server.client("alice")
    alice.send(line)
    error = alice.expect("[error ")
    assert error.startswith(f"[error {code}] ")
    assert len(error) > len(f"[error {code}] ") + 10  # a sentence, not just the code
    alice.send("still here")
    alice.expect("[#lobby] alice: still here")


def test_no_current_room_after_leaving_them_all(server: ServerThread) -> None:
    alice = server.client("alice")
    alice.send("/leave")
    alice.expect("You are in no room now")
    alice.send("anyone?")
    assert alice.expect("[error").startswith("[error no_current_room]")


def test_commands_need_a_nick_first(server: ServerThread) -> None:
    c = server.client()
    c.send("/join dev")
    assert c.expect("[error").startswith("[error not_registered]")
    c.expect("Type a nickname")
    c.send("/help")
    c.expect("Commands")
    c.send("bad nick!")
    assert c.expect("[error").startswith("[error invalid_nick]")
    c.expect("Type a nickname")
    holder = server.client("taken")
    c.send("taken")
    assert c.expect("[error").startswith("[error nick_taken]")
    c.send("/nick fine")
    c.expect("Welcome, fine!")
    holder.close()


def test_line_too_long_and_invalid_utf8_are_refused_and_the_connection_stays(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(max_line=100)
    alice = server.client("alice")
    alice.send("x" * 5000)
    assert alice.expect("[error").startswith("[error line_too_long]")
    alice.send_raw(b"bad \xff\xfe bytes\n")
    assert alice.expect("[error").startswith("[error invalid_utf8]")
    alice.send("fine")
    alice.expect("alice: fine")


def test_terminal_escapes_never_reach_another_terminal_raw(server: ServerThread) -> None:
    alice, bob = server.client("alice"), server.client("bob")
    alice.send_raw("\x1b]0;pwned\x07 \x1b[2J\x1b[31mred\x9b \u202eevil\x00\n".encode())
    line = bob.expect("red")
    raw = line.encode()
    assert not any(b < 0x20 for b in raw)
    assert "\x1b" not in line and "\x9b" not in line and "\u202e" not in line
    assert "␛]0;pwned␇" in line


def test_nick_change_is_seen_by_everyone_who_shares_a_room(server: ServerThread) -> None:
    alice, bob = server.client("alice"), server.client("bob")
    alice.send("/nick alicia")
    assert bob.expect("known as") == "*** alice is now known as alicia"
    alice.expect("known as")
    server.client("alice")  # the old nick is free
    bob.send("/msg alicia hi")
    alice.expect("[private] bob -> alicia: hi")


def test_a_newcomer_gets_the_backlog_then_the_live_stream(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(backlog=5)
    alice = server.client("alice")
    for i in range(8):
        alice.send(f"message {i}")
    alice.expect("message 7")
    bob = server.client()
    bob.send("bob")
    lines = bob.lines_until("End of history")
    history = [line for line in lines if "history]" in line]
    assert [line.rsplit(" ", 1)[1] for line in history] == ["3", "4", "5", "6", "7"]
    assert all(line.startswith("[#lobby] [20") for line in history)  # original time, marked as history
    assert "/history shows older ones" in lines[-1]
    alice.send("live one")
    bob.expect("[#lobby] alice: live one")


def test_history_pages_back_to_the_beginning(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(backlog=3)
    alice = server.client("alice")
    for i in range(10):
        alice.send(f"m{i}")
    alice.expect("m9")
    bob = server.client("bob")
    backlog = [line for line in bob.lines_until("End of history") if "history]" in line]
    assert [line.rsplit(" ", 1)[1] for line in backlog] == ["m7", "m8", "m9"]
    bob.send("/history 4")
    page1 = [line for line in bob.lines_until("End of history") if "history]" in line]
    assert [line.rsplit(" ", 1)[1] for line in page1] == ["m3", "m4", "m5", "m6"]
    bob.send("/history 4", "/history 4")  # two at once: they chain
    lines2 = bob.lines_until("End of history")
    page2 = [line for line in lines2 if "history]" in line]
    assert [line.rsplit(" ", 1)[1] for line in page2] == ["m0", "m1", "m2"]
    assert "that is the beginning of the room" in lines2[-1]
    assert bob.expect("#lobby") == "[#lobby] *** No older messages."


def test_topic(server: ServerThread) -> None:
    alice, bob = server.client("alice"), server.client("bob")
    alice.send("/topic")
    assert alice.expect("topic") == "[#lobby] *** No topic is set."
    alice.send("/topic Welcome, everyone")
    assert bob.expect("topic") == "[#lobby] *** alice set the topic: Welcome, everyone"
    bob.send("/topic #lobby")
    assert bob.expect("Topic:").startswith("[#lobby] *** Topic: Welcome, everyone (set by alice on ")
    carol = server.client()
    carol.send("carol")
    assert "Topic: Welcome, everyone" in carol.expect("You joined")
    alice.send("/topic -")
    bob.expect("alice cleared the topic")


def test_rooms_and_who(server: ServerThread) -> None:
    alice, bob = server.client("alice"), server.client("bob")
    bob.send("/join dev", "/topic #dev Developers")
    bob.expect("set the topic")
    alice.send("/rooms")
    lines = alice.lines_until("#dev (")
    assert lines[-3:] == ["*** 2 rooms:", "***   #lobby (2 members)", "***   #dev (1 member): Developers"]
    alice.send("/who")
    assert alice.expect("members") == "[#lobby] *** 2 members: alice, bob"
    alice.send("/who dev")
    assert alice.expect("member") == "[#dev] *** 1 member: @bob"  # its first member: its op for the session


def test_help(server: ServerThread) -> None:
    alice = server.client("alice")
    alice.send("/help")
    lines = alice.lines_until("/help COMMAND")
    for verb in ("/nick", "/join", "/leave", "/msg", "/me", "/rooms", "/who", "/topic", "/history", "/quit"):
        assert any(verb in line for line in lines), verb
    alice.send("/help msg")
    assert "/msg NICK|#ROOM TEXT" in alice.expect("/msg")


def test_join_switches_to_a_room_you_are_already_in(server: ServerThread) -> None:
    alice = server.client("alice")
    alice.send("/join dev", "/join lobby")
    alice.expect("#lobby is now your current room")
    alice.send("where am I")
    alice.expect("[#lobby] alice: where am I")


def test_json_mode(server: ServerThread) -> None:
    bob = server.client("bob")
    alice = LineClient(server.host, server.port, json_mode=True)
    alice.send("alice")
    events = alice.events_until("joined", room="lobby")
    assert [e["type"] for e in events] == ["welcome", "joined"]
    assert events[-1]["members"] == ["bob", "alice"]
    bob.send("hi alice")
    message = alice.expect_event("message")
    assert set(message) == {"type", "id", "time", "room", "nick", "text"}
    assert message["room"] == "lobby" and message["nick"] == "bob" and message["text"] == "hi alice"
    assert message["time"].endswith("Z") and "T" in message["time"]
    alice.send("/nick b@d")
    error = alice.expect_event("error")
    assert error["code"] == "invalid_nick" and error["message"]
    alice.send("/msg bob hello")
    private = alice.expect_event("private")
    assert private["nick"] == "alice" and private["to"] == "bob" and isinstance(private["id"], int)
    alice.send("/format text")
    assert alice.expect("format") == "*** Output format is now text."
    alice.send("/format json", "/quit")
    assert json.loads(alice.expect_closed()[-1])["type"] == "bye"


def test_message_ids_grow_and_everyone_sees_one_order(server: ServerThread) -> None:
    watchers = [LineClient(server.host, server.port, json_mode=True) for _ in range(3)]
    for i, w in enumerate(watchers):
        w.register(f"w{i}")
    talkers = [server.client(f"t{i}") for i in range(3)]
    for i in range(20):
        for t in talkers:
            t.send(f"{t.nick} {i}")
    orders = []
    for w in watchers:
        got = []
        while len(got) < 60:
            event = json.loads(w.expect('"type":"message"'))
            got.append((event["id"], event["text"]))
        orders.append(got)
    assert orders[0] == orders[1] == orders[2]
    ids = [i for i, _ in orders[0]]
    assert ids == sorted(ids) and len(set(ids)) == 60


def test_a_nick_is_freed_however_the_connection_ends(server: ServerThread) -> None:
    bob = server.client("bob")
    bob.close()
    server.wait_until(lambda loop: "bob" not in loop.state.nicks, what="bob's nick to be freed")
    server.client("bob")


def test_a_big_history_page_never_overflows_the_readers_send_queue(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(sendq=64 * 1024, max_line=4000, backlog=50)
    alice = server.client("alice")
    long_lines = [f"{i:03d} " + "x" * 3000 for i in range(100)]  # 300 KB of history
    for start in range(0, 100, 10):  # alice reads her echoes as she goes, as a real client does
        alice.send(*long_lines[start : start + 10])
        alice.expect(long_lines[start + 9][:20])
    bob = LineClient(server.host, server.port, json_mode=True)
    bob.register("bob")
    backlog = [e["text"] for e in bob.events_until("history_end") if e.get("history")]
    assert 0 < len(backlog) < 50 and backlog == long_lines[-len(backlog):]  # cut to fit, newest kept
    seen = list(backlog)
    while True:  # page back to the beginning: every message exactly once, connection never dropped
        bob.send("/history 500")
        page = bob.events_until("history_end", reason="page")
        seen = [e["text"] for e in page if e.get("history")] + seen
        if not page[-1]["more"]:
            break
    assert seen == long_lines


def test_a_bug_in_one_command_costs_that_line_only(make_server, caplog) -> None:  # type: ignore[no-untyped-def]
    server = make_server()

    def broken(*_args: object) -> None:
        raise RuntimeError("simulated bug")

    server.inspect(lambda loop: setattr(loop.service, "rooms", broken))  # our own code, made to fail: the safety
    # net is what is tested
    alice = server.client("alice")
    alice.send("/rooms")
    assert alice.expect("[error").startswith("[error server_error]")
    alice.send("still chatting")
    alice.expect("alice: still chatting")
    assert any("simulated bug" in (r.exc_text or "") or "error handling a line" in r.getMessage()
               for r in caplog.records)


def test_newcomers_to_a_busy_room_get_backlog_then_live_without_gap_or_duplicate(
        make_server: Callable[..., ServerThread]) -> None:
    """Newcomers join while two senders keep the room busy. What each newcomer receives (its backlog, then live)
    must be exactly the room's messages from its first backlog message on: no gap, no duplicate, same order."""
    import threading

    server = make_server(backlog=20)
    watcher = LineClient(server.host, server.port, json_mode=True)
    watcher.register("watcher")  # in the room before any message: it sees them all
    senders = [server.client(f"s{i}") for i in range(2)]
    stop = threading.Event()

    def talk(c: LineClient) -> None:
        i = 0
        while not stop.is_set():
            c.send(*(f"{c.nick} {i + k}" for k in range(10)))
            c.sync(f"t{i}")
            i += 10

    threads = [threading.Thread(target=talk, args=(c,), daemon=True) for c in senders]
    for t in threads:
        t.start()
    watcher.expect('"text":"s0 30"')  # the room is busy
    newcomers = []
    for i in range(8):
        c = LineClient(server.host, server.port, json_mode=True)
        c.send(f"new{i}")
        newcomers.append(c)
    for c in newcomers:
        c.expect_event("joined", room="lobby")
    for c in newcomers:  # and the room goes on after every join
        c.expect(lambda line: '"type":"message"' in line and '"history"' not in line)
    stop.set()
    for t in threads:
        t.join(10)
    for s in senders:
        s.sync("end")

    def message_ids(c: LineClient, token: str) -> list[int]:
        c.send(f"/ping {token}")
        c.events_until("pong", token=token)
        return [json.loads(line)["id"] for line in c.seen if '"type":"message"' in line]

    room = message_ids(watcher, "w")
    assert room == sorted(set(room)) and len(room) > 40
    for c in newcomers:
        got = message_ids(c, "n")
        assert got, "the newcomer got nothing"
        assert got == room[room.index(got[0]):], "a gap, a duplicate or a reordering between backlog and live"


def test_presence_lines_come_alone_and_before_what_followed_them(make_server: Callable[..., ServerThread]) -> None:
    """Joins may wait a moment to share a send (loop.PRESENCE_DELAY); they still come, and never after a
    message sent after them."""
    server = make_server()
    alice = server.client("alice")
    bob = server.client("bob")
    assert alice.expect("joined") == "[#lobby] *** bob joined"  # nothing else for alice: it comes anyway
    carol = server.client()
    carol.send("carol", "hello from carol")
    assert alice.lines_until("carol: hello from carol")[-2:] == ["[#lobby] *** carol joined",
                                                                 "[#lobby] carol: hello from carol"]
    bob.send("/leave")
    assert alice.expect("left").startswith("[#lobby] *** bob left")


def test_a_room_past_quiet_above_says_so_and_announces_nobody(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(quiet_above=2)
    alice = server.client("alice")
    bob = server.client("bob")
    alice.expect("bob joined")
    carol = LineClient(server.host, server.port, json_mode=True)
    carol.send("/nick carol")
    joined = carol.expect_event("joined")
    assert joined["quiet"] is True and joined["count"] == 3 and joined["members"] == ["carol"]
    dave = server.client()
    dave.send("dave")
    assert "3 members; joins and leaves are not announced here" not in dave.expect("You joined #lobby")
    assert "4 members; joins and leaves are not announced here" in dave.seen[-1]
    alice.send("/who")
    assert alice.expect("members") and not any("carol joined" in line or "dave joined" in line
                                               for line in alice.seen)
    bob.send("/quit")
    bob.expect_closed()
    alice.send("/who")
    alice.expect("members")
    assert not any("bob quit" in line or "bob left" in line for line in alice.seen)
