"""The IRC door end to end: real sockets, IRC clients beside native ones in the same rooms and history."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from harness import WAIT, IrcClient, ServerThread, chat_command

IRC = {"irc_port": 0}


@pytest.fixture
def irc_server(make_server: Callable[..., ServerThread]) -> ServerThread:
    return make_server(**IRC)


def test_irc_and_native_share_a_room_and_its_history(irc_server: ServerThread, sqlite_db: str) -> None:
    irc = irc_server.irc_client("ircuser")
    native = irc_server.client("nc_user")
    irc.send("JOIN #dev")
    irc.expect(lambda line: line.startswith(":ircuser!") and " JOIN #dev" in line)
    irc.expect(" 366 ircuser #dev ")
    native.send("/join dev")
    native.expect("You joined #dev")
    irc.expect(lambda line: line.startswith(":nc_user!") and line.endswith("JOIN #dev"))
    irc.send("PRIVMSG #dev :hello from IRC")
    native.expect("hello from IRC")
    native.send("hello from nc")
    irc.expect(":nc_user!nc_user@chat PRIVMSG #dev :hello from nc")
    irc.send("PRIVMSG nc_user :psst")
    native.expect("psst")
    irc.send("PART #dev :bye now")
    native.expect("ircuser left")
    irc.send("QUIT :done")
    irc.expect(lambda line: line.startswith("ERROR :"))
    irc.expect_closed()
    native.sync()
    history = subprocess.run([*chat_command(), "history", "--db", sqlite_db, "--room", "dev"], capture_output=True,
                             text=True, timeout=WAIT * 3, check=True).stdout
    assert "ircuser" in history and "hello from IRC" in history
    assert "nc_user" in history and "hello from nc" in history


def test_registration_waits_for_user_and_cap_end(irc_server: ServerThread) -> None:
    c = IrcClient(*irc_server.loop.door_address("irc"))
    c.send("CAP LS 302", "NICK early")
    c.expect(" CAP * LS ")
    c.send("USER early 0 * :Early Bird")
    c.send("PING before-end")
    assert not any(" 001 " in line for line in c.lines_until(lambda line: line.endswith("before-end")))
    c.send("CAP END")
    c.expect(" 001 early ")
    lines = c.lines_until(" 422 ")
    assert any("CASEMAPPING=ascii" in line and "CHANTYPES=#" in line for line in lines)


def test_nick_in_use_and_bad_nicks_get_numerics(irc_server: ServerThread) -> None:
    holder = irc_server.client("taken")
    c = IrcClient(*irc_server.loop.door_address("irc"))
    c.send("NICK taken", "USER x 0 * :x")
    c.expect(" 433 * taken ")
    c.send("NICK a[b]")
    c.expect(" 432 ")
    c.send("NICK free_one")
    c.expect(" 001 free_one ")
    holder.close()


def test_commands_before_registration_are_refused_and_quit_says_error(irc_server: ServerThread) -> None:
    c = IrcClient(*irc_server.loop.door_address("irc"))
    c.send("JOIN #dev")
    c.expect(" 451 ")
    c.send("QUIT")
    c.expect(lambda line: line.startswith("ERROR :"))
    c.expect_closed()


def test_without_echo_message_the_sender_gets_nothing_back(irc_server: ServerThread) -> None:
    a = irc_server.irc_client("plain_a")
    b = irc_server.irc_client("echo_b", caps=("echo-message",))
    for c in (a, b):
        c.send("JOIN #room")
        c.expect(" 366 ")
    a.send("PRIVMSG #room :from a")
    b.expect("PRIVMSG #room :from a")
    b.send("PRIVMSG #room :from b")
    b.expect(":echo_b!echo_b@chat PRIVMSG #room :from b")  # its echo is the receipt
    a.expect("PRIVMSG #room :from b")
    a.sync()
    assert not any("PRIVMSG #room :from a" in line for line in a.seen)


def test_ping_and_ctcp_action(irc_server: ServerThread) -> None:
    a = irc_server.irc_client("actor")
    native = irc_server.client("watcher")
    native.send("/join stage")
    native.expect("You joined #stage")
    a.send("JOIN #stage")
    a.expect(" 366 ")
    a.send("PRIVMSG #stage :\x01ACTION waves\x01")
    native.expect("* actor waves")
    native.send("/me bows")
    a.expect(":watcher!watcher@chat PRIVMSG #stage :\x01ACTION bows\x01")
    a.send("PING :token123")
    a.expect("PONG chat token123")
