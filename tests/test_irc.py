"""The IRC door end to end: real sockets, IRC clients beside native ones in the same rooms and history."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from chat.server.config import ServerConfig
from harness import WAIT, IrcClient, ServerThread, TLSFiles, chat_command

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


def test_a_message_to_yourself_comes_once_and_twice_with_echo_message(irc_server: ServerThread) -> None:
    plain = irc_server.irc_client("plain_a")
    plain.send("PRIVMSG plain_a :note to self")  # received, though it sends no echo
    plain.expect(":plain_a!plain_a@chat PRIVMSG plain_a :note to self")
    plain.sync()
    assert sum("note to self" in x for x in plain.seen) == 1
    echo = irc_server.irc_client("echo_b", caps=("echo-message",))
    echo.send("PRIVMSG echo_b :twice")  # the echo and the delivery
    echo.sync()
    assert sum(x.endswith(" PRIVMSG echo_b twice") for x in echo.seen) == 2


def test_chathistory_of_a_room_that_does_not_exist_is_an_invalid_target(irc_server: ServerThread) -> None:
    c = irc_server.irc_client("reader", caps=("draft/chathistory", "batch"))
    c.send("CHATHISTORY LATEST #nowhere * 10")
    assert c.expect(" FAIL ").startswith(":chat FAIL CHATHISTORY INVALID_TARGET LATEST #nowhere :")


def test_client_only_tags_and_tagmsg_are_relayed_live_to_message_tags_clients(irc_server: ServerThread) -> None:
    ann = irc_server.irc_client("ann", caps=("message-tags",))
    bob = irc_server.irc_client("bob", caps=("message-tags", "echo-message"))
    cat = irc_server.irc_client("cat")
    for c in (ann, bob, cat):
        c.send("JOIN #dev")
        c.expect(" 366 ")
    ann.send("@+draft/reply=7;+bad\x01=x;fizz=buzz PRIVMSG #dev :hi there")
    relayed = bob.expect(" PRIVMSG #dev :hi there")
    tags = relayed.split(" ", 1)[0]
    assert "+draft/reply=7" in tags and "msgid=" in tags and "fizz" not in tags and "bad" not in tags
    assert cat.expect(" PRIVMSG #dev :hi there") == ":ann!ann@chat PRIVMSG #dev :hi there"  # no message-tags
    bob.send("@+typing=active TAGMSG #dev")
    assert bob.expect(" TAGMSG ").endswith(" :bob!bob@chat TAGMSG #dev")  # its echo
    typing = ann.expect(" TAGMSG ")
    assert typing.startswith("@") and "+typing=active" in typing and typing.endswith(" TAGMSG #dev")
    cat.sync()
    assert not [x for x in cat.seen if "TAGMSG" in x]
    late = irc_server.irc_client("late", caps=("message-tags",))  # history has the message, not its tags
    late.send("JOIN #dev")
    assert "+draft/reply" not in late.expect(" PRIVMSG #dev :hi there")


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


def test_ircs_door_speaks_irc_over_tls_beside_the_plain_one(make_server: Callable[..., ServerThread],
                                                            tls_files: TLSFiles) -> None:
    server = make_server(irc_port=0, ircs_port=0, tls_cert=tls_files.cert, tls_key=tls_files.key, tls_port=0)
    secure = IrcClient(*server.loop.door_address("irc-tls"), tls=tls_files.client_context())
    assert secure.sock.version() in ("TLSv1.2", "TLSv1.3")  # type: ignore[attr-defined]
    secure.register("secure")
    plain = server.irc_client("plain")
    for c in (secure, plain):
        c.send("JOIN #tls")
        c.expect(" 366 ")
    secure.send("PRIVMSG #tls :over TLS")
    plain.expect(":secure!secure@chat PRIVMSG #tls :over TLS")


def test_ircs_port_needs_a_certificate() -> None:
    with pytest.raises(ValueError, match="ircs-port"):
        ServerConfig(ircs_port=6697)


def test_a_long_native_message_reaches_irc_in_pieces_and_whole(irc_server: ServerThread) -> None:
    irc = irc_server.irc_client("reader")
    native = irc_server.client("writer")
    irc.send("JOIN #long")
    irc.expect(" 366 ")
    native.send("/join long")
    native.expect("You joined #long")
    text = " ".join(f"word{i:04d}" for i in range(300))  # 2,699 bytes
    native.send(text)
    parts = [irc.expect(" PRIVMSG #long :").split(" PRIVMSG #long :", 1)[1] for _ in range(7)]
    assert all(len(f":writer!writer@chat PRIVMSG #long :{p}\r\n".encode()) <= 512 for p in parts)
    assert "".join(parts) == text


def test_labeled_response_wraps_the_whole_answer(irc_server: ServerThread) -> None:
    c = irc_server.irc_client("labeler", caps=("labeled-response", "batch"))
    c.send("@label=one PING tok")
    c.expect("@label=one :chat PONG chat tok")
    c.send("@label=two JOIN #labeled")  # a new room: its answer comes after a read of the database
    start = c.expect(lambda line: line.startswith("@label=two ") and " BATCH +" in line)
    ref = start.split("BATCH +", 1)[1].split(" ")[0]
    inside = c.lines_until(f"BATCH -{ref}")
    assert any(" JOIN #labeled" in line for line in inside) and any(" 366 " in line for line in inside)
    assert all(line.startswith(f"@batch={ref}") for line in inside[:-1])
    c.send("@label=three PONG nothing")
    c.expect("@label=three :chat ACK")
