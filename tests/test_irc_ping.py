"""The server's keepalive PING for IRC clients (--ping-timeout): a silent client is pinged, one that stays silent
is closed with ERROR, one that answers stays; native clients are never pinged. Over real sockets."""

from __future__ import annotations

from collections.abc import Callable

from harness import IrcClient, ServerThread


def test_a_silent_irc_client_is_pinged_then_closed_and_one_that_answers_stays(
        make_server: Callable[..., ServerThread]) -> None:
    server = make_server(irc_port=0, lobby=None, ping_timeout=2.0)
    address = server.loop.door_address("irc")
    quiet, lively = IrcClient(*address), IrcClient(*address)
    quiet.register("quiet")
    lively.register("lively")
    for c in (quiet, lively):
        c.send("JOIN #dev")
        c.expect(" 366 ")
    nat = server.client()
    nat.send("nat", "/join dev")
    nat.expect("You joined #dev")
    assert lively.expect(lambda x: x.startswith("PING ")) == "PING chat"
    lively.send("PONG chat")
    assert quiet.expect(lambda x: x.startswith("PING ")) == "PING chat"  # ... and it does not answer
    closing = [x for x in quiet.expect_closed() if x.startswith("ERROR ")]
    lively.sync()  # still here: it answered (it would be closed 4 s after its PONG; quiet goes 2 s after it)
    assert len(closing) == 1 and closing[0].startswith("ERROR :Closing Link: quiet[chat] (Ping timeout: ")
    assert "quit (Ping timeout: " in nat.expect("*** quiet quit")  # its rooms hear why
    nat.send("/ping still")  # never pinged (a person on nc cannot answer), never closed for silence
    assert nat.expect("pong") == "*** pong still"
    assert not [x for x in nat.seen if "PING" in x]
