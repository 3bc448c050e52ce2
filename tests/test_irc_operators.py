"""Server operators (admin accounts' powers: OPER / `/oper`), KILL, WALLOPS and user modes, NOTICE as a message
kind of its own, TIME and INFO: over real sockets, IRC and native clients on one server."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness import IrcClient, LineClient, ServerThread

PASSWORD = "correct-horse-battery"


@pytest.fixture
def irc_server(make_server: Callable[..., ServerThread]) -> ServerThread:
    return make_server(irc_port=0, lobby=None, login_burst=10)  # the tests try wrong passwords on purpose


def irc(server: ServerThread, nick: str, caps: tuple[str, ...] = ()) -> IrcClient:
    c = IrcClient(*server.loop.door_address("irc"))
    c.register(nick, caps)
    return c


def native(server: ServerThread, nick: str) -> LineClient:
    c = server.client()
    c.send(nick)
    c.expect(f"Welcome, {nick}!")
    return c


def account(server: ServerThread, nick: str, admin: bool = False) -> None:
    """An account `nick` (PASSWORD), made as /register makes one, then made an admin as `chat users admin` does."""
    from chat.protocol.names import name_key
    from chat.storage.accounts import AccountStore
    from chat.storage.database import make_engine

    c = native(server, nick)
    c.send(f"/register {PASSWORD}")
    c.expect("is registered to you")
    c.send("/quit")
    c.expect_closed()
    if admin:
        engine = make_engine(server.config.db)
        try:
            assert AccountStore(engine).set_admin(name_key(nick), True)
        finally:
            engine.dispose()


def test_oper_takes_an_admin_accounts_powers_and_shows_in_modes_who_and_whois(irc_server: ServerThread) -> None:
    account(irc_server, "boss", admin=True)
    account(irc_server, "plain")
    op, other = irc(irc_server, "ircop"), irc(irc_server, "other")
    op.send("OPER boss wrong-password")
    assert op.expect(" 464 ").endswith(" 464 ircop :Password incorrect")
    op.send("OPER nobody whatever")
    assert op.expect(" 491 ").endswith(" 491 ircop :No O-lines for your host")
    op.send(f"OPER plain {PASSWORD}")  # a right password, but not an admin account: the same answer
    op.expect(" 491 ircop ")
    op.send("OPER boss")
    op.expect(" 461 ircop OPER ")
    op.send("MODE ircop")
    assert op.expect(" 221 ").endswith(" 221 ircop +")
    op.send(f"OPER boss {PASSWORD}")
    op.expect(" 381 ircop ")
    assert op.expect(" MODE ").endswith(" MODE ircop +o")  # the nick stays its own
    op.send("MODE ircop")
    assert op.expect(" 221 ").endswith(" 221 ircop +o")
    other.send("WHO ircop")
    assert " ircop H* :0 " in other.lines_until(" 315 ")[0]
    other.send("WHOIS ircop")
    assert any(" 313 other ircop " in x for x in other.lines_until(" 318 "))
    op.send("AWAY :out", "MODE ircop -o")
    op.expect(" 306 ")
    assert op.expect(" MODE ").endswith(" MODE ircop -o")
    other.send("WHO ircop")
    assert " ircop G :0 " in other.lines_until(" 315 ")[0]
    nat = native(irc_server, "nat")  # natively: /oper, and /umode
    nat.send(f"/oper boss {PASSWORD}")
    nat.expect("*** You are a server operator now (the powers of the admin account boss).")
    nat.send("/umode")
    nat.expect("*** Your user modes: +o")


def test_kill_disconnects_with_error_and_quit_and_needs_an_operator(irc_server: ServerThread) -> None:
    account(irc_server, "boss", admin=True)
    op, alice, bob = irc(irc_server, "ircop"), irc(irc_server, "alice"), irc(irc_server, "bob")
    for c in (alice, bob):
        c.send("JOIN #dev")
        c.expect(" 366 ")
    alice.expect(" JOIN #dev")  # bob's
    alice.send("KILL bob :go away")
    assert alice.expect(" 481 ").endswith(" 481 alice :Permission Denied- You're not an IRC operator")
    op.send(f"OPER boss {PASSWORD}")
    op.expect(" 381 ")
    op.send("KILL nobody :who")
    op.expect(" 401 ircop nobody ")
    op.send("KILL bob :go away")
    lines = bob.expect_closed()
    assert any(x.startswith("ERROR :Closing Link: bob[") and "Killed by ircop: go away" in x for x in lines), lines
    assert "Killed (ircop (go away))" in alice.expect(" QUIT ")
    nat = native(irc_server, "nat")  # a native user, killed by a native operator
    boss = native(irc_server, "chief")
    boss.send("/kill nat")
    boss.expect("[error not_operator]")
    boss.send(f"/oper boss {PASSWORD}")
    boss.expect("You are a server operator now")
    boss.send("/kill nat enough")
    assert any("*** Goodbye: Killed by chief: enough (killed)" in x for x in nat.expect_closed())
    boss.expect("nat is disconnected (enough).")


def test_wallops_reach_those_with_user_mode_w(irc_server: ServerThread) -> None:
    account(irc_server, "boss", admin=True)
    op, deaf, listener = irc(irc_server, "nick1"), irc(irc_server, "nick2"), irc(irc_server, "nick3")
    op.send("WALLOPS :not yet")
    assert op.expect(" 481 ").endswith(" 481 nick1 :Permission Denied- You're not an IRC operator")
    listener.send("MODE nick3 +w")
    assert listener.expect(" MODE ").endswith(" MODE nick3 +w")
    nat = native(irc_server, "nat")
    nat.send("/umode +w")
    nat.expect("*** Your user modes changed: +w")
    op.send(f"OPER boss {PASSWORD}")
    op.expect(" 381 ")
    op.send("WALLOPS :hi everyone")
    assert op.expect(" WALLOPS ") == ":nick1!nick1@chat WALLOPS :hi everyone"  # the sender's echo
    assert listener.expect(" WALLOPS ") == ":nick1!nick1@chat WALLOPS :hi everyone"
    assert nat.expect("WALLOPS") == "*** WALLOPS from nick1: hi everyone"
    deaf.sync()
    assert not [x for x in deaf.collect(0.3) if "WALLOPS" in x]


def test_notice_is_its_own_kind_for_every_door_and_in_history(irc_server: ServerThread) -> None:
    ann = irc(irc_server, "ann", caps=("echo-message",))
    bob = irc(irc_server, "bob")
    nat = native(irc_server, "nat")
    robot = LineClient(irc_server.host, irc_server.port, json_mode=True)
    robot.send("/nick robot", "/join dev")
    robot.expect_event("joined", room="dev")
    nat.send("/join dev")
    nat.expect("You joined #dev")
    for c in (ann, bob):
        c.send("JOIN #dev")
        c.expect(" 366 ")
    ann.send("NOTICE #dev :the build is green", "NOTICE bob :psst", "PRIVMSG #dev :plain words")
    assert ann.expect(" NOTICE #dev ") == ":ann!ann@chat NOTICE #dev :the build is green"  # its echo
    assert bob.expect(" NOTICE #dev ") == ":ann!ann@chat NOTICE #dev :the build is green"
    assert bob.expect(" NOTICE bob ") == ":ann!ann@chat NOTICE bob psst"
    bob.expect(" PRIVMSG #dev :plain words")
    assert nat.expect("the build is green") == "[#dev] -ann- the build is green"
    event = robot.expect_event("message", room="dev")
    assert event["text"] == "the build is green" and event["notice"] is True
    assert "notice" not in robot.expect_event("message", room="dev")
    late = irc(irc_server, "late")  # the join backlog has it as a NOTICE: a stored message of its own kind
    late.send("JOIN #dev")
    backlog = late.lines_until(" PRIVMSG #dev :plain words")
    assert any(x.endswith(" NOTICE #dev :the build is green") for x in backlog)
    nat.send("/history dev 5 before 1000000")
    assert "-ann- the build is green" in nat.expect("the build is green")


def test_time_and_info(irc_server: ServerThread) -> None:
    c = irc(irc_server, "clock")
    c.send("TIME")
    answer = c.expect(" 391 ")
    assert answer.startswith(":chat 391 clock chat :") and "+00:00" in answer
    c.send("INFO")
    lines = c.lines_until(" 374 ")
    assert lines[-1] == ":chat 374 clock :End of INFO list" and all(" 371 clock :" in x for x in lines[:-1])
    c.send("INFO other.example")
    c.expect(" 402 clock other.example ")
    nat = native(irc_server, "nat")
    nat.send("/time")
    assert nat.expect("server's time").endswith(" UTC")
