"""Invite exceptions (+I NICK): a nick that comes into an invite-only room uninvited, as often as it likes,
stored like bans. Native and IRC clients, real sockets, real SQLite (and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable

from harness import IrcClient, LineClient, ServerThread

PASSWORD = "correct horse battery"


def account(server: ServerThread, nick: str) -> LineClient:
    c = server.client()
    c.register_account(nick, PASSWORD)
    return c


def test_an_invite_exception_lets_a_nick_into_an_invite_only_room_until_taken_back(
        make_server: Callable[..., ServerThread]) -> None:
    server = make_server(irc_port=0)
    op = IrcClient(*server.loop.door_address("irc"))
    op.register("chanop")
    op.send("JOIN #dev", "MODE #dev +i")
    op.expect(":chanop!chanop@chat MODE #dev +i")
    op.send("MODE #dev +I bar!*@*")
    op.expect(":chanop!chanop@chat MODE #dev +I bar!*@*")
    carol = server.client("carol")
    carol.send("/join dev")
    carol.expect("[error invite_only]")
    bar = server.client("bar")
    bar.send("/join dev")
    bar.expect("You joined #dev")
    bar.send("/leave dev")
    bar.expect("[#dev] *** bar left")
    bar.send("/join dev")  # not spent, as a guest's invite is
    bar.expect("You joined #dev")
    op.send("MODE #dev +I")
    op.expect(" 346 chanop #dev bar!*@*")
    op.expect(" 347 chanop #dev :End of Channel Invite Exception List")
    bar.send("/mode dev")  # not an op: the list is not theirs
    assert "invite exceptions" not in bar.expect("#dev:")
    op.send("MODE #dev -I bar")
    bar.expect("[#dev] *** chanop no longer lets bar into #dev uninvited")
    bar.send("/leave dev", "/join dev")
    bar.expect("[error invite_only]")
    op.send("MODE #dev +I")
    assert op.expect(" 347 chanop #dev ") and not any(" 346 " in line for line in op.seen[-3:])
    isupport = " ".join(line for line in op.seen if " 005 chanop " in line)  # of its registration
    assert " CHANMODES=Ibe,k,l,imnst " in isupport and " INVEX=I " in isupport and " EXCEPTS=e " in isupport


def test_invite_exceptions_survive_a_restart_and_ban_still_wins(make_server: Callable[..., ServerThread],
                                                               any_db: str) -> None:
    first = make_server(db=any_db)
    alice = account(first, "alice")
    alice.send("/join dev", "/mode dev +i", "/mode dev +I troll", "/mode dev +I friend")
    alice.expect("[#dev] *** alice let friend into #dev uninvited while it is invite-only")
    alice.send("/ban dev troll")
    alice.expect("banned troll")
    alice.sync()
    first.stop()

    second = make_server(db=any_db)
    friend = second.client("friend")
    friend.send("/join dev")
    friend.expect("You joined #dev")
    troll = second.client("troll")
    troll.send("/join dev")
    troll.expect("[error banned]")
    alice = second.client()
    alice.login("alice", PASSWORD)
    alice.send("/join dev", "/mode dev")
    assert alice.expect("#dev:") == ("[#dev] *** #dev: invite-only, no messages from outside; owner alice; ops: "
                                     "alice; banned: troll; invite exceptions: friend, troll")
