"""Rooms with owners, end to end: every moderation action and its refusal, the settings after a restart, and
what outsiders of an invite-only or keyed room never see. Real sockets, real SQLite (and PostgreSQL)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from harness import LineClient, ServerThread, chat_command

PASSWORD = "correct horse battery"


def account(server: ServerThread, nick: str) -> LineClient:
    c = server.client()
    c.register_account(nick, PASSWORD)
    return c


def answer(c: LineClient, line: str) -> list[str]:
    """The lines the server answers `line` with."""
    c.send(line, "/ping answered")
    return c.lines_until("pong answered")[:-1]


def joined(c: LineClient, room: str, key: str = "") -> None:
    c.send(f"/join {room} {key}".rstrip())
    c.expect(f"You joined #{room}")


def test_the_first_logged_in_joiner_owns_a_new_room_and_guests_make_unowned_ones(server: ServerThread) -> None:
    alice, guest = account(server, "alice"), server.client("guest")
    joined(alice, "dev")
    alice.send("/mode dev")
    assert alice.expect("[#dev] *** #dev:") == "[#dev] *** #dev: no messages from outside; owner alice; ops: alice"
    joined(guest, "dev")
    guest.send("/who")
    assert guest.expect("members:") == "[#dev] *** 2 members: @alice, guest"
    joined(guest, "hangout")  # a guest's room has no owner: its first member is its op for the session
    guest.send("/mode hangout", "/topic #hangout anyone may")
    assert guest.expect("#hangout:") == "[#hangout] *** #hangout: no messages from outside; no owner; ops: guest"
    guest.expect("guest set the topic: anyone may")
    joined(alice, "hangout")  # a later logged-in joiner does not become its owner, nor an op
    alice.send("/kick hangout guest")
    assert "has no owner: only its session ops" in alice.expect("[error not_op]")


def test_op_deop_and_what_ops_may_do(server: ServerThread) -> None:
    alice, bob, carol = account(server, "alice"), account(server, "bob"), server.client("carol")
    for c in (alice, bob, carol):
        joined(c, "dev")
    bob.send("/kick dev carol")
    assert bob.expect("[error not_op]") == "[error not_op] You are not an op of #dev."
    alice.send("/op dev carol")  # a guest: an op while in the room, never stored
    assert carol.expect("made carol an op") == "[#dev] *** alice made carol an op"
    alice.send("/deop dev carol")
    carol.expect("[#dev] *** alice took ops from carol")
    alice.send("/op dev bob")
    assert carol.expect("made bob an op") == "[#dev] *** alice made bob an op"
    bob.send("/kick dev carol flooding")
    assert carol.expect("was kicked") == "[#dev] *** carol was kicked by bob (flooding)"
    carol.expect("*** #lobby is now your current room.")
    alice.expect("[#dev] *** carol was kicked by bob (flooding)")
    bob.send("/kick dev alice", "/deop dev alice", "/ban dev alice")
    assert bob.expect("[error protected]") == "[error protected] alice is the owner of #dev."
    bob.expect("[error protected] alice owns #dev: an owner is always an op.")
    bob.expect("[error protected]")
    alice.send("/deop dev bob")
    bob.expect("[#dev] *** alice took ops from bob")
    bob.send("/kick dev alice")
    bob.expect("[error not_op]")
    carol.send("/op dev carol")
    assert "You are not in #dev" in carol.expect("[error not_in_room]")


def test_bans_of_accounts_and_guests_and_unban(server: ServerThread) -> None:
    alice, bob, guest = account(server, "alice"), account(server, "bob"), server.client("troll")
    for c in (alice, bob, guest):
        joined(c, "dev")
    alice.send("/ban dev troll")
    guest.expect("[#dev] *** alice banned troll")
    guest.expect("[#dev] *** troll was kicked by alice (banned)")
    guest.send("/join dev")
    assert guest.expect("[error banned]") == "[error banned] You are banned from #dev."
    guest.send("/history dev")
    guest.expect("[error banned]")
    alice.send("/ban dev bob")
    bob.expect("bob was kicked by alice (banned)")
    bob.send("/logout", "/nick bob2")
    bob.expect("is now known as bob2")
    bob.send("/join dev")  # not the account any more: in as a guest
    bob.expect("You joined #dev")
    alice.send("/unban dev troll", "/unban dev nobody")
    alice.expect("[#dev] *** alice lifted the ban on troll")
    alice.expect("*** nobody is not banned from #dev.")
    joined(guest, "dev")


def test_invite_only_rooms_and_keys(server: ServerThread) -> None:
    alice, bob, guest = account(server, "alice"), account(server, "bob"), server.client("guest")
    joined(alice, "secret")
    alice.send("/topic #secret plans", "/msg #secret the plan is X")
    alice.expect("the plan is X")
    alice.send("/mode secret +i")
    alice.expect("[#secret] *** alice made #secret invite-only")
    for c in (bob, guest):
        c.send("/join secret")
        assert "invite-only" in c.expect("[error invite_only]")
        rooms = answer(c, "/rooms")
        assert rooms[0] == "*** 1 room:" and not any("secret" in line for line in rooms)
        assert answer(c, "/who secret") == ["[#secret] *** Nobody is in #secret."]
        assert "only its members see its topic" in answer(c, "/topic #secret")[0]
        assert answer(c, "/history secret")[0].startswith("[error invite_only]")
    guest.send("/invite guest secret")
    guest.expect("[error not_in_room]")
    alice.send("/invite bob secret", "/invite guest secret")
    assert bob.expect("invited bob") == "*** alice invited bob to #secret (/join secret to go in)"
    guest.expect("alice invited guest to #secret")
    joined(bob, "secret")
    bob.expect("the plan is X")  # invited: its backlog
    joined(guest, "secret")
    for c in (bob, guest):
        c.send("/leave secret")
        c.expect("left")
    joined(bob, "secret")  # an account stays invited
    guest.send("/join secret")  # a guest's invite admitted it once
    guest.expect("[error invite_only]")
    assert not any("the plan is X" in line for line in guest.seen[: guest.seen.index(
        next(line for line in guest.seen if "You joined #secret" in line))])

    alice.send("/mode secret -i+k sesame")
    alice.expect("made #secret open to everyone")
    alice.expect("set a key on #secret")
    assert not any("sesame" in line for line in bob.seen)  # the key is not broadcast
    guest.send("/join secret", "/join secret wrong")
    assert guest.expect("[error bad_key]") == "[error bad_key] You need the key of #secret: /join secret KEY."
    assert "That is not the key" in guest.expect("[error bad_key]")
    guest.send("/history secret")
    guest.expect("[error bad_key]")
    joined(guest, "secret", "sesame")
    alice.send("/mode secret")
    assert alice.expect("#secret:").startswith("[#secret] *** #secret: key sesame, no messages from outside; owner "
                                               "alice")
    guest.send("/mode secret")
    assert "sesame" not in guest.expect("#secret:")


def test_ops_only_topic_and_moderated_rooms(server: ServerThread) -> None:
    alice, bob, guest = account(server, "alice"), account(server, "bob"), server.client("guest")
    for c in (alice, bob, guest):
        joined(c, "dev")
    alice.send("/mode dev +tm")
    guest.expect("let only ops set the topic of #dev")
    guest.expect("made #dev moderated")
    guest.send("/topic #dev mine now", "hello?")
    assert guest.expect("[error not_op]") == "[error not_op] Only the ops of #dev may set its topic."
    assert "only its ops and voiced members may speak" in guest.expect("[error moderated]")
    alice.send("/mode dev +v bob", "/mode dev +v guest")
    bob.expect("alice gave bob a voice")
    guest.expect("alice gave guest a voice")  # a guest: for as long as it is in the room
    bob.send("I may speak")
    guest.expect("[#dev] bob: I may speak")
    guest.send("/who")
    assert guest.expect("members:") == "[#dev] *** 3 members: @alice, +bob, +guest"
    alice.send("/mode dev -v guest")
    guest.expect("took the voice of guest")
    alice.send("/mode dev -v bob", "/mode dev -m", "/mode dev +x", "/mode dev +o")
    bob.expect("took the voice of bob")
    bob.expect("made #dev unmoderated")
    alice.expect("[error bad_argument] There is no mode x")
    alice.expect("[error bad_argument] +o needs a word after it")
    guest.send("/mode dev +i")
    guest.expect("[error not_op]")


def test_settings_ops_and_bans_survive_a_restart(make_server: Callable[..., ServerThread], any_db: str) -> None:
    first = make_server(db=any_db)
    alice, bob, troll = account(first, "alice"), account(first, "bob"), first.client("troll")
    joined(alice, "dev")
    alice.send("/invite bob dev")  # (once bob is in, an invite is refused: already_in_room)
    alice.expect("invited bob")
    joined(bob, "dev")
    alice.send("/op dev bob", "/ban dev troll", "/mode dev +iktls-n sesame 5", "/invite bob dev")
    alice.expect("[error already_in_room] bob is in #dev already.")
    alice.sync()
    first.stop()

    second = make_server(db=any_db)
    troll = second.client("troll")
    troll.send("/join dev sesame")
    troll.expect("[error banned]")
    guest = second.client("guest")
    guest.send("/join dev sesame")
    guest.expect("[error invite_only]")
    bob = second.client()
    bob.login("bob", PASSWORD)
    joined(bob, "dev")  # invited: in without the key
    bob.send("/mode dev")
    assert bob.expect("#dev:") == ("[#dev] *** #dev: invite-only, key sesame, at most 5 members, secret, only ops "
                                   "set the topic; owner alice; ops: alice, bob; banned: troll; invited: bob")
    bob.send("/kick dev guest")  # still an op
    bob.expect("[error not_in_room] guest is not in #dev.")
    alice = second.client()
    alice.login("alice", PASSWORD)
    joined(alice, "dev")
    alice.send("/who")
    assert alice.expect("members:") == "[#dev] *** 2 members: @alice, @bob"


def test_server_admins_moderate_every_room(server: ServerThread, sqlite_db: str) -> None:
    owner, boss = account(server, "owner"), account(server, "boss")
    joined(owner, "club")
    owner.send("/mode club +i")
    owner.expect("invite-only")
    boss.send("/join club")
    boss.expect("[error invite_only]")
    result = subprocess.run([*chat_command(), "users", "admin", "boss", "--db", sqlite_db], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    boss.send("/logout", f"/login boss {PASSWORD}")  # the flag is read at login
    boss.expect("You are logged in as boss")
    joined(boss, "club")
    boss.send("/kick club owner an admin may")
    owner.expect("owner was kicked by boss (an admin may)")
    guest = server.client("g")
    joined(guest, "open")
    boss.send("/deop open g", "/mode open +m")  # an unowned room (g is its session op), and boss is not in it
    guest.expect("boss took ops from g")
    guest.expect("boss made #open moderated")


def test_json_events_of_moderation(server: ServerThread) -> None:
    alice = LineClient(server.host, server.port, json_mode=True)
    alice.send("/nick alice", f"/register {PASSWORD}", "/join dev")
    joined_event = alice.expect_event("joined", room="dev")
    assert joined_event["ops"] == ["alice"] and joined_event["voiced"] == []
    bob = LineClient(server.host, server.port, json_mode=True)
    bob.send("/nick bob", "/join dev")
    bob.expect_event("joined", room="dev")
    alice.send("/mode dev +m", "/kick dev bob bye")
    mode = alice.expect_event("mode")
    assert {k: mode[k] for k in ("room", "nick", "mode", "target")} == {"room": "dev", "nick": "alice",
                                                                         "mode": "+m", "target": None}
    kick = bob.expect_event("kick")
    assert {k: kick[k] for k in ("room", "nick", "by", "reason")} == {"room": "dev", "nick": "bob", "by": "alice",
                                                                       "reason": "bye"}
    alice.send("/who", "/mode dev")
    assert alice.expect_event("who")["ops"] == ["alice"]
    modes = alice.expect_event("room_modes")
    assert modes["modes"] == "+mn" and modes["owner"] == "alice" and modes["ops"] == ["alice"]
    assert modes["limit"] is None


def test_an_invite_only_room_nobody_is_in_keeps_its_secrets(server: ServerThread) -> None:
    """Read back from the database (nobody in it, so not in memory), its settings still guard it."""
    alice = account(server, "alice")
    joined(alice, "vault")
    alice.send("/topic #vault the combination", "/msg #vault 4-8-15-16", "/mode vault +i", "/leave vault")
    alice.expect("left")
    guest = server.client("guest")
    assert answer(guest, "/topic #vault")[0].startswith("[error invite_only]")
    assert answer(guest, "/history vault 50")[0].startswith("[error invite_only]")
    assert answer(guest, "/join vault")[0].startswith("[error invite_only]")
    assert not any("4-8-15-16" in line or "combination" in line for line in guest.seen)
    guest.send("/rooms")
    guest.expect("*** 1 room:")
    joined(alice, "vault")  # its owner comes back in, and gets its backlog
    alice.expect("4-8-15-16")


def test_search_never_reaches_into_a_room_the_searcher_may_not_read(server: ServerThread) -> None:
    owner = account(server, "owner")
    for room in ("vault", "keyed", "club", "open"):
        joined(owner, room)
        owner.send(f"/msg #{room} needle in #{room}")
        owner.expect(f"needle in #{room}")
    owner.send("/mode vault +i", "/mode keyed +k sesame", "/ban club snoop")
    owner.expect("banned snoop")
    owner.sync()

    def found(c: LineClient) -> set[str]:
        c.send("/search needle")
        lines = c.lines_until(lambda line: "End of search" in line or "No results for" in line)
        return {line.rsplit("#", 1)[1] for line in lines if "needle in #" in line}

    snoop = server.client("snoop")
    assert found(snoop) == {"open"}
    snoop.send("/search needle in:#vault")
    assert not any("needle in #vault" in line for line in snoop.lines_until("No results for"))
    assert found(owner) == {"vault", "keyed", "club", "open"}  # its own rooms, closed or not
    member = server.client("member")
    joined(member, "keyed", "sesame")
    assert found(member) == {"keyed", "club", "open"}



def test_a_member_limit_turns_joiners_away_but_not_the_invited_nor_readers(server: ServerThread) -> None:
    alice, bob, carol, dave = account(server, "alice"), server.client("bob"), server.client("carol"), \
        server.client("dave")
    joined(alice, "dev")
    alice.send("/msg #dev before the limit", "/mode dev +l 0", "/mode dev +l many")
    assert "A member limit is a whole number from 1 to 1,000,000" in alice.expect("[error bad_argument]")
    alice.expect("[error bad_argument]")
    alice.send("/mode dev +l 2")
    assert alice.expect("limited") == "[#dev] *** alice limited #dev to 2 members"
    joined(bob, "dev")
    carol.send("/join dev")
    assert carol.expect("[error room_full]") == "[error room_full] #dev is full: it takes at most 2 members."
    assert "alice: before the limit" in answer(carol, "/history dev")[0]  # it counts members, not readers
    alice.send("/invite carol dev")  # an invite spares the limit, as it spares the key
    carol.expect("invited carol")
    joined(carol, "dev")
    alice.send("/mode dev")
    assert alice.expect("#dev:").startswith("[#dev] *** #dev: at most 2 members, no messages from outside;")
    bob.send("/leave dev")
    bob.expect("[#dev] *** bob left")
    dave.send("/join dev")  # carol came in on an invite: there are still 2
    dave.expect("[error room_full]")
    alice.send("/mode dev -l")
    alice.expect("removed the member limit of #dev")
    joined(dave, "dev")


def test_a_secret_room_is_hidden_from_outsiders_yet_anyone_may_join_it(server: ServerThread) -> None:
    alice = LineClient(server.host, server.port, json_mode=True)
    alice.send("/nick alice", f"/register {PASSWORD}", "/join dev")
    alice.expect_event("joined", room="dev")
    alice.send("/topic #dev the secret plan", "/msg #dev needle in a secret room", "/mode dev +s")
    assert alice.expect_event("mode")["mode"] == "+s"
    guest = server.client("guest")
    rooms = answer(guest, "/rooms")
    assert rooms[0] == "*** 1 room:" and not any("#dev" in line for line in rooms)  # nor counted
    assert answer(guest, "/who dev") == ["[#dev] *** Nobody is in #dev."]
    assert "#dev" not in " ".join(answer(guest, "/whois alice"))
    assert answer(guest, "/topic #dev")[0] == ("[error not_in_room] #dev is secret: only its members see its "
                                               "topic; /join dev first.")
    assert not any("needle in a secret room" in line for line in answer(guest, "/search needle"))
    json_guest = LineClient(server.host, server.port, json_mode=True)
    json_guest.send("/nick watcher", "/join dev")  # not invite-only: whoever knows its name comes in
    joined_event = json_guest.expect_event("joined", room="dev")
    assert joined_event["secret"] is True and joined_event["topic"] == "the secret plan"
    json_guest.send("/who dev")
    assert json_guest.expect_event("who")["secret"] is True
    alice.send("/mode dev -s")
    json_guest.expect_event("mode", mode="-s")
    guest.send("/rooms")
    guest.expect("#dev (2 members): the secret plan")


def test_a_room_set_minus_n_takes_messages_from_outside_and_keeps_them(server: ServerThread) -> None:
    alice, outsider, troll = account(server, "alice"), server.client("outsider"), server.client("troll")
    joined(alice, "dev")
    alice.send("/ban dev troll")
    alice.expect("banned troll")
    outsider.send("/msg #dev hello?")
    assert outsider.expect("[error not_in_room]") == "[error not_in_room] You are not in #dev; /join it first."
    alice.send("/mode dev -n")
    assert alice.expect("let anyone send") == "[#dev] *** alice let anyone send to #dev, members or not"
    outsider.send("/msg #dev hi from outside", "/me #dev waves from outside")
    alice.expect("[#dev] outsider: hi from outside")
    alice.expect("[#dev] * outsider waves from outside")
    outsider.expect("[#dev] outsider: hi from outside")  # its receipt: stored, like a member's message
    troll.send("/msg #dev let me in")
    assert troll.expect("[error banned]") == "[error banned] You are banned from #dev."
    alice.send("/mode dev +m")
    alice.expect("made #dev moderated")
    outsider.send("/msg #dev again")
    outsider.expect("[error moderated]")
    alice.send("/mode dev -m+n")
    alice.expect("let only members send to #dev")
    outsider.send("/msg #dev once more")
    outsider.expect("[error not_in_room]")
    history = answer(server.client("reader"), "/history dev 10")
    assert [line.split("] ", 2)[-1] for line in history if "outside" in line] == [
        "outsider: hi from outside", "* outsider waves from outside"]
    assert not any("let me in" in line or "again" in line or "once more" in line for line in alice.seen)
