"""`/search` as an attacker uses it, and `/history ... around ID`, the way to open a result: closed rooms of others,
rooms that ban you, other people's private conversations, a nick that changed hands. Real sockets, real SQLite
(and PostgreSQL where it says `any_db`)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from harness import LineClient, ServerThread, chat_command

PASSWORD = "correct horse battery"


def account(server: ServerThread, nick: str, json_mode: bool = False) -> LineClient:
    c = LineClient(server.host, server.port, json_mode=json_mode)
    c.register_account(nick, PASSWORD)
    return c


def joined(c: LineClient, room: str, key: str = "") -> None:
    c.send(f"/join {room} {key}".rstrip())
    c.expect(lambda line: f"You joined #{room}" in line or ('"joined"' in line and f'"room":"{room}"' in line))


def found(c: LineClient, query: str) -> list[dict[str, object]]:
    """The results of a search by a JSON client (any error fails)."""
    c.send(f"/search {query}")
    events = c.events_until("search_end")
    assert not any(e["type"] == "error" for e in events), events
    return [e for e in events if e.get("search")]


def texts(c: LineClient, query: str) -> list[str]:
    return [str(e["text"]) for e in found(c, query)]


def error_code(c: LineClient, line: str) -> str:
    c.send(line)
    return str(c.expect_event("error")["code"])


def test_search_leaves_out_the_closed_rooms_of_others_and_the_rooms_that_ban_you(server: ServerThread) -> None:
    alice = account(server, "alice", json_mode=True)
    bob = account(server, "bob", json_mode=True)
    guest = LineClient(server.host, server.port, json_mode=True)
    guest.register("guest")
    ids = {}
    for room, mode in (("secret", "+i"), ("vault", "+k sesame"), ("club", None), ("open", None)):
        joined(alice, room)
        if room == "club":
            joined(bob, room)
            joined(guest, room)
        alice.send(f"/msg #{room} saffron in {room}")
        ids[room] = alice.expect_event("message", room=room)["id"]
        if mode:
            alice.send(f"/mode {room} {mode}")
            alice.expect_event("mode", room=room)
    alice.send("/ban club bob", "/ban club guest")
    bob.expect_event("kick", room="club")
    guest.expect_event("kick", room="club")
    everything = ["saffron in open", "saffron in club", "saffron in vault", "saffron in secret"]
    assert texts(alice, "saffron") == everything
    for outsider in (bob, guest):
        assert texts(outsider, "saffron") == ["saffron in open"]
        for query in ("saffron in:#secret", "in:#vault", "in:#club", "from:alice", "in:#secret in:#open saffron",
                      '"in secret"', "vault -open"):
            assert [t for t in texts(outsider, query) if t != "saffron in open"] == [], query
        # nor by opening a result's neighbourhood
        assert error_code(outsider, f"/history secret around {ids['secret']}") == "invite_only"
        assert error_code(outsider, f"/history vault around {ids['vault']}") == "bad_key"
        assert error_code(outsider, f"/history club around {ids['club']}") == "banned"
    alice.send("/invite bob secret", "/unban club bob")
    bob.expect_event("invite")
    joined(bob, "secret")  # in it now: its messages are his to find
    joined(bob, "club")
    assert texts(bob, "saffron") == everything[:2] + everything[3:]
    joined(guest, "vault", "sesame")
    assert texts(guest, "saffron") == ["saffron in open", "saffron in vault"]


def test_a_logged_in_user_finds_their_own_private_conversations_and_nobody_elses(
    make_server: Callable[..., ServerThread], any_db: str,
) -> None:
    server = make_server(any_db)
    alice = account(server, "alice", json_mode=True)
    bob = account(server, "bob", json_mode=True)
    carol = account(server, "carol", json_mode=True)
    dave = account(server, "dave", json_mode=True)
    guest = LineClient(server.host, server.port, json_mode=True)
    guest.register("erin")
    alice.send("/msg bob meet me at the quay", "/msg erin the quay, for a guest")
    mine = bob.expect_event("private", text="meet me at the quay")["id"]
    guest.expect_event("private")
    carol.send("/msg dave the quay keys are under the mat")
    theirs = dave.expect_event("private")["id"]
    dave.send("/msg carol thanks")
    carol.expect_event("private", text="thanks")
    (hit,) = found(bob, "quay")
    assert (hit["type"], hit["id"], hit["nick"], hit["to"], hit["text"]) == (
        "private", mine, "alice", "bob", "meet me at the quay")
    assert [e["id"] for e in found(alice, "quay")] == [mine]  # the guest's message is in no conversation
    assert [e["id"] for e in found(dave, "quay")] == [theirs]
    assert [e["id"] for e in found(carol, "from:dave")] != [] and found(alice, "from:dave") == []
    assert found(guest, "quay") == [] and found(guest, "from:alice") == []
    assert found(bob, "quay in:#lobby") == []  # in: narrows to rooms
    # logged out, bob is a guest: his conversations are not his to search until he logs in again
    bob.send("/logout")
    bob.expect_event("account")
    assert found(bob, "quay") == []
    # and the result opens in its conversation, for its two sides only
    alice.send("/format text", f"/history @bob around {mine}")
    page = alice.lines_until("End of history with bob")
    assert page[-2].startswith("[private] [")
    assert page[-2].endswith(f" history #{mine}] alice -> bob: meet me at the quay")
    assert page[-1] == (f"*** End of history with bob around #{mine}: 1 message; that is the beginning of it, "
                        "no newer ones.")
    carol.send(f"/history @alice around {mine}")
    assert carol.expect_event("private_history_end")["count"] == 0


def test_history_around_a_result_in_text_and_json(make_server: Callable[..., ServerThread], any_db: str) -> None:
    server = make_server(any_db)
    alice = LineClient(server.host, server.port, json_mode=True)
    alice.register("alice")
    joined(alice, "dev")
    alice.send(*[f"/msg #dev line {i}" for i in range(30)], "/msg #lobby elsewhere")
    alice.sync()
    alice.send("/msg #dev the needle itself")
    alice.send(*[f"/msg #dev after {i}" for i in range(30)])
    alice.sync()
    (hit,) = found(alice, "needle")
    target = int(str(hit["id"]))
    alice.send(f"/history dev around {target}")
    events = alice.events_until("history_end")
    shown = [e for e in events if e["type"] == "message"]
    assert [e["text"] for e in shown] == [f"line {i}" for i in range(21, 30)] + ["the needle itself"] + [
        f"after {i}" for i in range(10)]
    assert all(e["history"] and e["room"] == "dev" for e in shown)
    assert events[-1] == {"type": "history_end", "room": "dev", "count": 20, "more": True, "reason": "around",
                          "around": target, "newer": True}
    alice.send(f"/history #dev 3 around {target}")
    assert [e["text"] for e in alice.events_until("history_end") if e["type"] == "message"] == [
        "line 29", "the needle itself", "after 0"]
    alice.send(f"/history dev 4 around {target}")
    ids = [e["id"] for e in alice.events_until("history_end") if e["type"] == "message"]
    alice.send("/format text", f"/history dev 4 around {target}")
    page = alice.lines_until("End of history around")[-5:]
    assert page[1].startswith("[#dev] [") and page[1].endswith(f" history #{target}] alice: the needle itself")
    assert " history] alice: line 29" in page[0] and " history] alice: after 1" in page[-2]
    assert page[-1] == (f"[#dev] *** End of history around #{target}: 4 messages; /history #dev before {ids[0]} "
                        f"shows older ones, /history #dev after {ids[-1]} newer ones.")
    # ids of another room, or of nothing, show this room's messages near them, never the other room's
    alice.send("/format json", f"/history dev 4 around {target + 10_000}")
    near = alice.events_until("history_end")
    assert [e["text"] for e in near if e["type"] == "message"] == ["after 28", "after 29"]
    assert near[-1]["newer"] is False
    alice.send("/history dev around 0")
    assert alice.expect_event("error")["code"] == "bad_argument"


def test_history_around_is_in_the_help(server: ServerThread) -> None:
    alice = server.client("alice")
    alice.send("/help history")
    assert alice.expect("around ID shows") == ("*** around ID shows message ID with the messages before and "
                                               "after it (to open a /search result).")


def test_a_server_admin_searches_every_room_but_only_their_own_conversations(
    server: ServerThread, sqlite_db: str,
) -> None:
    owner = account(server, "owner", json_mode=True)
    boss = account(server, "boss", json_mode=True)
    carol = account(server, "carol", json_mode=True)
    joined(owner, "club")
    owner.send("/mode club +i", "/msg #club lantern in the club", "/msg carol lantern, privately")
    owner.expect_event("message", text="lantern in the club")
    carol.expect_event("private", text="lantern, privately")
    carol.send("/msg boss lantern for boss")
    boss.expect_event("private", text="lantern for boss")
    assert texts(boss, "lantern") == ["lantern for boss"]
    result = subprocess.run([*chat_command(), "users", "admin", "boss", "--db", sqlite_db], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    boss.send("/logout", f"/login boss {PASSWORD}")  # the flag is read at login
    boss.expect_event("account", nick="boss")
    assert texts(boss, "lantern") == ["lantern for boss", "lantern in the club"]


def test_search_leaves_out_what_a_session_op_closed_though_it_is_not_stored(server: ServerThread) -> None:
    """In a room nobody owns (a guest's, an IRC user's channel), a session op's +s, +i, +k and bans last while the
    room is in memory and are not stored; the search, which reads the rooms' settings from the database, must not
    show their messages to outsiders meanwhile."""
    gina = LineClient(server.host, server.port, json_mode=True)
    gina.register("gina")  # a guest: the first one into each room is its session op, and nobody owns it
    otto = LineClient(server.host, server.port, json_mode=True)
    otto.register("otto")
    banned = LineClient(server.host, server.port, json_mode=True)
    banned.register("banned")
    for room, mode in (("den", "+s"), ("attic", "+i"), ("cellar", "+k sesame"), ("porch", None)):
        joined(gina, room)
        gina.send(f"/msg #{room} saffron in {room}")
        gina.expect_event("message", room=room)
        if mode:
            gina.send(f"/mode {room} {mode}")
            gina.expect_event("mode", room=room)
    joined(banned, "porch")
    gina.send("/ban porch banned")
    banned.expect_event("kick", room="porch")
    assert texts(gina, "saffron") == ["saffron in porch", "saffron in cellar", "saffron in attic", "saffron in den"]
    assert texts(otto, "saffron") == ["saffron in porch"]
    assert texts(banned, "saffron") == []
