"""Who people are, across doors: IRC's USER name and real name in WHO and WHOIS, AWAY shared with native
clients (`/away`), WHO by nick or mask, and session ops (the first member of a room nobody owns), over real
sockets."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness import IrcClient, LineClient, ServerThread


@pytest.fixture
def irc_server(make_server: Callable[..., ServerThread]) -> ServerThread:
    return make_server(irc_port=0, lobby=None)


def native(server: ServerThread, nick: str) -> LineClient:
    c = server.client()
    c.send(nick)
    c.expect(f"Welcome, {nick}!")
    return c


def registered(server: ServerThread, nick: str, user: str, realname: str) -> IrcClient:
    c = IrcClient(*server.loop.door_address("irc"))
    c.send(f"NICK {nick}", f"USER {user} 0 * :{realname}")
    c.expect(f" 001 {nick} ")
    c.sync()
    return c


def test_user_name_and_real_name_show_in_who_and_whois(irc_server: ServerThread) -> None:
    ann = registered(irc_server, "ann", "annuser", "Ann Example")
    bob = registered(irc_server, "bob", "b", "Bob")
    for c in (ann, bob):
        c.send("JOIN #dev")
        c.expect(" 366 ")
    bob.send("WHO #dev")
    lines = bob.lines_until(" 315 ")
    assert f":{irc_server.config.server_name} 352 bob #dev annuser " in lines[0]
    assert lines[0].endswith(" ann H@ :0 Ann Example")  # ann made #dev: its op while there
    bob.send("WHOIS ann")
    whois = bob.lines_until(" 318 ")
    assert any(" 311 bob ann annuser " in x and x.endswith(" * :Ann Example") for x in whois)
    assert any(" 319 bob ann " in x and x.endswith(" @#dev") for x in whois)
    assert any(" 317 bob ann " in x and "signon" in x for x in whois)
    nat = native(irc_server, "nat")
    nat.send("/whois ann")
    said = nat.expect("*** ann:")
    assert "real name Ann Example" in said and "in #dev" in said


def test_who_by_nick_and_by_mask(irc_server: ServerThread) -> None:
    ann = registered(irc_server, "coolNick", "cool", "Cool One")
    bob = registered(irc_server, "other", "o", "Other")
    stranger = registered(irc_server, "coolStranger", "s", "Stranger")
    for c in (ann, bob):
        c.send("JOIN #dev")
        c.expect(" 366 ")
    bob.send("WHO coolnick")
    lines = bob.lines_until(" 315 ")
    assert len(lines) == 2 and " 352 other * cool " in lines[0] and lines[0].endswith(" coolNick H :0 Cool One")
    assert lines[1].split(" ")[3] == "coolnick"  # the mask as asked
    bob.send("WHO cool*")  # a mask matches those you share a room with, not strangers
    assert [x.split(" ")[7] for x in bob.lines_until(" 315 ")[:-1]] == ["coolNick"]
    bob.send("WHO coolStranger")  # a nick, exactly: anyone online
    assert " coolStranger H " in bob.lines_until(" 315 ")[0]
    bob.send("WHO nobody_here")
    assert len(bob.lines_until(" 315 ")) == 1
    stranger.close()


def test_away_is_shared_across_doors(irc_server: ServerThread) -> None:
    ann = registered(irc_server, "ann", "ann", "Ann")
    nat = native(irc_server, "nat")
    ann.send("AWAY :at lunch")
    ann.expect(" 306 ann ")
    nat.send("/msg ann are you there?")
    assert nat.expect("is away") == "*** ann is away: at lunch"
    nat.send("/whois ann")
    assert "away: at lunch" in nat.expect("*** ann:")
    nat.send("/join dev")
    nat.expect("You joined #dev")
    ann.send("JOIN #dev")
    ann.expect(" 366 ")
    nat.send("/away back soon")
    nat.expect("*** You are marked as away: back soon")
    ann.send("PRIVMSG nat :hi")
    ann.expect(" 301 ann nat :back soon")
    ann.send("WHO #dev")
    flags = {x.split(" ")[7]: x.split(" ")[8] for x in ann.lines_until(" 315 ")[:-1]}
    assert flags == {"ann": "G", "nat": "G@"}  # nat made #dev
    ann.send("WHOIS nat")
    assert any(x.endswith(" 301 ann nat :back soon") for x in ann.lines_until(" 318 "))
    nat.send("/away")
    nat.expect("*** You are back (not away).")
    ann.send("AWAY")
    ann.expect(" 305 ann ")
    nat.send("/msg ann again")
    nat.sync()
    assert not any("is away" in x for x in nat.seen[-3:])


def test_the_first_member_of_a_room_nobody_owns_is_its_op_for_the_session(irc_server: ServerThread) -> None:
    ann = registered(irc_server, "ann", "ann", "Ann")
    bob = registered(irc_server, "bob", "bob", "Bob")
    ann.send("JOIN #fresh")
    assert ann.lines_until(" 366 ")[-2].endswith(" #fresh @ann")
    bob.send("JOIN #fresh")
    assert bob.lines_until(" 366 ")[-2].endswith(":@ann bob")
    bob.send("MODE #fresh +m")
    bob.expect(" 482 bob #fresh ")
    ann.send("MODE #fresh +mk secret")
    bob.expect(" MODE #fresh +m")
    bob.send("PRIVMSG #fresh :may I?")
    bob.expect(" 404 bob #fresh ")
    ann.send("MODE #fresh +o bob")  # a guest given ops: an op while in the room
    bob.expect(" MODE #fresh +o bob")
    bob.send("KICK #fresh ann :my turn")
    ann.expect(" KICK #fresh ann :my turn")
    bob.send("PART #fresh")
    bob.expect(" PART #fresh")
    # the room emptied: what its session ops set lasted while it was in memory, as an IRC channel's modes do
    bob.send("JOIN #fresh")
    lines = bob.lines_until(" 366 ")
    assert lines[-2].endswith(" #fresh @bob")
    bob.send("MODE #fresh")
    assert bob.expect(" 324 ").endswith(" 324 bob #fresh +n")  # no +m nor +k any more


def test_whowas_and_lusers(irc_server: ServerThread) -> None:
    ann = registered(irc_server, "ann", "ann", "Ann")
    assert any(" 251 ann :There are 1 users " in x for x in ann.seen)  # after registration, as servers do
    for ident in ("first", "second"):
        gone = registered(irc_server, "gone", ident, "Gone Soon")
        gone.send("QUIT :bye")
        gone.expect_closed()
    ann.send("LUSERS")
    stats = ann.lines_until(" 266 ")
    assert any(" 265 ann 1 2 " in x for x in stats)  # one online now, two at most since start
    ann.send("WHOWAS gone")
    was = ann.lines_until(" 369 ")
    users = [x.split(" ")[4] for x in was if " 314 " in x]
    assert users == ["second", "first"]  # the latest first
    assert all(x.endswith(" * :Gone Soon") for x in was if " 314 " in x)
    ann.send("WHOWAS gone 1", "WHOWAS never_here", "WHOWAS")
    assert len([x for x in ann.lines_until(" 369 ") if " 314 " in x]) == 1
    assert " 406 ann never_here " in ann.lines_until(" 369 ")[0]
    ann.expect(" 431 ann ")
    nat = native(irc_server, "nat")
    nat.send("/whowas gone", "/online")
    assert nat.expect("*** gone was here lately:") == (
        "*** gone was here lately: user second, real name Gone Soon; user first, real name Gone Soon")
    assert nat.expect("online") == "*** 2 people online (at most 2 since the server started), in 0 rooms."


def test_numerics_that_name_a_room_and_a_nick(irc_server: ServerThread) -> None:
    ann = registered(irc_server, "ann", "ann", "Ann")
    bob = registered(irc_server, "bob", "bob", "Bob")
    other = registered(irc_server, "carol", "carol", "Carol")
    ann.send("JOIN #dev", "TOPIC #dev :the topic")
    ann.expect(" TOPIC #dev :the topic")
    bob.send("JOIN #dev")
    joined = bob.lines_until(" 366 ")
    assert any(" 333 bob #dev ann " in x for x in joined)  # who set the topic, and when
    ann.send("INVITE bob #dev")
    ann.expect(" 443 ann bob #dev :")
    ann.send("MODE #dev +o carol")
    ann.expect(" 441 ann carol #dev :")
    ann.send("KICK #nowhere bob", "MODE #nowhere +o bob")
    ann.expect(" 403 ann #nowhere ")
    ann.expect(" 403 ann #nowhere ")
    ann.send("MODE #dev +k :has spaces", "MODE #dev +n")
    ann.expect(" 696 ann #dev k * :")
    ann.send("MODE #dev")
    assert ann.expect(" 324 ").endswith(" 324 ann #dev +n")  # +n is on by default (and so already: no MODE line)
    ann.expect(" 329 ann #dev ")
    ann.send("MODE #dev +b carol!*@*")  # a mask bans its nick
    ann.expect(" MODE #dev +b carol")
    other.send("JOIN #dev")
    other.expect(" 474 carol #dev ")
    ann.send("WHOIS nobody_at_all")
    assert ann.lines_until(" 318 ")[-2:][0].split(" ")[1] == "401"


def test_userhost_says_who_is_away(irc_server: ServerThread) -> None:
    ann = registered(irc_server, "ann", "annu", "Ann")
    bob = registered(irc_server, "bob", "bob", "Bob")
    bob.send("USERHOST ann")
    assert bob.expect(" 302 ").endswith(f" 302 bob ann=+annu@{irc_server.config.server_name}")
    ann.send("AWAY :gone fishing")
    ann.expect(" 306 ")
    bob.send("USERHOST ann nobody")
    assert bob.expect(" 302 ").endswith(" 302 bob ann=-annu@" + irc_server.config.server_name)
    assert bob.expect(" 302 ").endswith(" 302 bob :")  # nobody: an empty answer


def test_away_notify_tells_those_sharing_a_room(irc_server: ServerThread) -> None:
    ann = irc_server.irc_client("ann", caps=("away-notify",))
    plain = irc_server.irc_client("plain")
    bob = registered(irc_server, "bob", "bob", "Bob")
    nat = native(irc_server, "nat")
    for c in (ann, plain, bob):
        c.send("JOIN #dev")
        c.expect(" 366 ")
    nat.send("/join dev")
    nat.expect("You joined #dev")
    bob.send("AWAY :brb")
    ann.expect(f":bob!bob@{irc_server.config.server_name} AWAY brb")
    assert nat.expect("*** bob is away") == "*** bob is away: brb"
    bob.send("AWAY")
    ann.expect(lambda x: x.endswith(" AWAY"))
    nat.expect("*** bob is back.")
    nat.send("/away out")
    nat.expect("You are marked as away")
    nat.send("/leave dev", "/join dev")  # joining while away: away-notify says so after the JOIN
    ann.expect(" JOIN #dev")
    assert ann.expect(" AWAY ").endswith(" AWAY out")
    plain.sync()
    assert not any(x.split(" ")[1:2] == ["AWAY"] for x in plain.seen)  # without the capability: nothing


def test_chathistory_between_two_messages(irc_server: ServerThread) -> None:
    ann = irc_server.irc_client("ann", caps=("draft/chathistory", "batch", "message-tags", "echo-message"))
    ann.send("JOIN #dev")
    ann.expect(" 366 ")
    for i in range(6):
        ann.send(f"PRIVMSG #dev :m{i}")
    ids = [int(ann.expect(lambda x, i=i: x.endswith(f"PRIVMSG #dev m{i}")).split("msgid=")[1].split(" ")[0])
           for i in range(6)]
    ann.send(f"CHATHISTORY BETWEEN #dev msgid={ids[0]} msgid={ids[4]} 10")
    page = ann.lines_until(lambda x: x.startswith(":") and " BATCH -" in x)
    assert [x.rsplit(" ", 1)[1] for x in page if "PRIVMSG" in x] == ["m1", "m2", "m3"]
    ann.send(f"CHATHISTORY BETWEEN #dev msgid={ids[5]} msgid={ids[1]} 2")  # from the later end: the 2 nearest it
    page = ann.lines_until(lambda x: x.startswith(":") and " BATCH -" in x)
    assert [x.rsplit(" ", 1)[1] for x in page if "PRIVMSG" in x] == ["m3", "m4"]


def test_chathistory_around_a_message(irc_server: ServerThread) -> None:
    ann = irc_server.irc_client("ann", caps=("draft/chathistory", "batch", "message-tags", "echo-message"))
    ann.send("JOIN #dev")
    ann.expect(" 366 ")
    for i in range(7):
        ann.send(f"PRIVMSG #dev :m{i}")
    ids = [int(ann.expect(lambda x, i=i: x.endswith(f"PRIVMSG #dev m{i}")).split("msgid=")[1].split(" ")[0])
           for i in range(7)]
    ann.send(f"CHATHISTORY AROUND #dev msgid={ids[3]} 4")  # the message, one more before it, two after it
    page = ann.lines_until(lambda x: x.startswith(":") and " BATCH -" in x)
    assert [x.rsplit(" ", 1)[1] for x in page if "PRIVMSG" in x] == ["m2", "m3", "m4", "m5"]
    assert sum(" BATCH +" in x for x in page) == 1  # one answer


def test_channel_modes_set_natively_hold_for_irc_limit_secret_and_messages_from_outside(
        irc_server: ServerThread) -> None:
    nat = native(irc_server, "nat")
    nat.send("/join dev")  # a room nobody owns: nat is its session op
    nat.expect("You joined #dev")
    nat.send("/mode dev -n+sl 2")
    nat.expect("limited #dev to 2 members")
    ann = IrcClient(*irc_server.loop.door_address("irc"))
    ann.register("ann", caps=("echo-message", "message-tags"))
    ann.send("PRIVMSG #dev :from outside")  # -n: an outsider's message is the room's, stored, echoed with its id
    echo = ann.expect(" PRIVMSG #dev ")
    assert echo.startswith("@msgid=") and echo.endswith(" :from outside")
    nat.expect("[#dev] ann: from outside")
    bob = registered(irc_server, "bob", "b", "Bob")
    bob.send("LIST", "WHOIS nat", "NAMES #dev")
    assert not any("#dev" in line for line in bob.lines_until(" 323 "))  # +s: not listed to outsiders
    assert not any(" 319 " in line for line in bob.lines_until(" 318 "))
    assert bob.expect(" 366 ").endswith(" 366 bob #dev :End of /NAMES list")
    bob.send("JOIN #dev")  # secret, not invite-only: whoever knows the name comes in
    names = bob.expect(" 353 ")
    assert " 353 bob @ #dev :" in names and set(names.rsplit(":", 1)[1].split()) == {"bob", "@nat"}
    carol = registered(irc_server, "carol", "c", "Carol")
    carol.send("JOIN #dev")
    assert carol.expect(" 471 ").endswith(" 471 carol #dev :Cannot join channel (+l)")
    bob.send("MODE #dev")
    assert bob.expect(" 324 ").endswith(" 324 bob #dev +ls 2")
    nat.send("/mode dev +n-l")
    assert bob.expect(" MODE #dev ").endswith(" MODE #dev +n-l")  # one command, one MODE line
    ann.send("PRIVMSG #dev :again")
    assert ann.expect(" 404 ").endswith(" 404 ann #dev :Cannot send to channel")
