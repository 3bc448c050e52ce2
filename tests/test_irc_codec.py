"""The IRC codec alone: parsing, the command each IRC line becomes, rendering, and any bytes in."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat.protocol import commands as cmd
from chat.protocol import events as ev
from chat.protocol.codec import Reply
from chat.protocol.errors import ChatError, ErrorCode
from chat.protocol.irc import IrcCodec
from chat.protocol.irc.mapping import BODY_MAX, CHANMODES, TAGS_MAX, isupport
from chat.protocol.irc.message import format_tags, parse
from chat.server.member import Link, Member


def codec(registered: bool = True, nick: str = "me") -> tuple[IrcCodec, Member]:
    c = IrcCodec("srv")
    m = Member(1, Link())
    if registered:
        m.nick, m.key, m.registered = nick, nick.lower(), True
    c.attach(m)
    return c, m


def decoded(c: IrcCodec, line: str) -> list[object]:
    return list(c.decode(line))


def replies(items: list[object]) -> str:
    return "".join(i.data.decode() for i in items if isinstance(i, Reply))


def test_parse_tags_source_and_trailing() -> None:
    m = parse(r"@time=x;+note=a\sb\:c :nick!u@h PRIVMSG #dev :hello there")
    assert m.verb == "PRIVMSG" and m.params == ["#dev", "hello there"] and m.source == "nick!u@h"
    assert m.tags == {"time": "x", "+note": "a b;c"}
    assert format_tags({"a": "b c;d"}) == r"@a=b\sc\:d"


def test_lines_become_the_native_commands() -> None:
    c, _ = codec()
    assert decoded(c, "JOIN #dev,#ops key1") == [cmd.Join(room="dev", key="key1"), cmd.Join(room="ops")]
    assert " 442 me #dev " in replies(decoded(c, "PART #dev :gone"))  # not in it
    assert decoded(c, "PRIVMSG #dev :hi") == [cmd.Msg(target="#dev", text="hi")]
    assert decoded(c, "PRIVMSG bob :hi") == [cmd.Msg(target="bob", text="hi")]
    assert decoded(c, "PRIVMSG #dev :\x01ACTION waves\x01") == [cmd.Me(room="dev", text="waves")]
    assert decoded(c, "TOPIC #dev :") == [cmd.Topic(room="dev", text="-")]
    assert decoded(c, "KICK #dev bob :out") == [cmd.Kick(room="dev", nick="bob", reason="out")]
    assert decoded(c, "MODE #dev +o bob") == [cmd.Mode(room="dev", modes="+o", args=("bob",))]
    assert decoded(c, "CHATHISTORY BEFORE #dev msgid=42 10") == [cmd.History(room="dev", before=42, count=10)]
    assert decoded(c, "QUIT :bye") == [cmd.Quit(reason="bye")]


def test_refusals_are_numerics() -> None:
    c, _ = codec()
    assert " 421 me FROB " in replies(decoded(c, "FROB x"))
    assert " 461 me JOIN " in replies(decoded(c, "JOIN"))
    assert " 403 me &x " in replies(decoded(c, "JOIN &x"))
    assert " 432 me a[b] " in replies(decoded(c, "NICK a[b]"))
    assert " 412 " in replies(decoded(c, "PRIVMSG #dev"))
    unregistered, _ = codec(registered=False)
    assert " 451 * " in replies(decoded(unregistered, "JOIN #dev"))


def test_registration_waits_for_nick_user_and_cap_end() -> None:
    c, _ = codec(registered=False)
    assert " CAP * LS " in replies(decoded(c, "CAP LS 302"))
    assert decoded(c, "NICK alice") == []
    assert decoded(c, "USER a 0 * :A") == []
    assert " ACK " in replies(decoded(c, "CAP REQ :server-time echo-message"))
    assert decoded(c, "CAP END") == [cmd.Nick(nick="alice", user="a", realname="A")]
    assert c.echo


def test_sasl_plain_is_a_login_that_keeps_the_nick_for_later() -> None:
    c, _ = codec(registered=False)
    decoded(c, "CAP REQ sasl")
    assert "AUTHENTICATE +" in replies(decoded(c, "AUTHENTICATE PLAIN"))
    login = decoded(c, "AUTHENTICATE AGFsaWNlAHNlY3JldC1wdw==")  # \0alice\0secret-pw
    assert len(login) == 1 and isinstance(login[0], cmd.Login)
    assert login[0].nick == "alice" and login[0].password.get_secret_value() == "secret-pw"
    assert not login[0].take_nick


def test_shared_renderings_depend_on_the_key_only() -> None:
    a, _ = codec(nick="alice")
    b, _ = codec(nick="bob")
    message = ev.ChatMessage(7, ev.MessageKind.MESSAGE, "carol", "hi", 1_800_000_000.0, room="dev")
    assert a.key == b.key and a.render([message]) == b.render([message])
    decoded(b, "CAP REQ server-time")
    assert a.key != b.key
    assert b.render([message]).startswith(b"@time=2027-01-15T08:00:00.000Z :carol!carol@srv PRIVMSG #dev hi")


def test_events_render_as_irc() -> None:
    c, _ = codec()
    assert c.render([ev.Join("dev", "bob", 0.0)]) == b":bob!bob@srv JOIN #dev\r\n"
    assert c.render([ev.Error(ErrorCode.NICK_TAKEN, "taken", "nick", "bob")]) == \
        b":srv 433 me bob :Nickname is already in use\r\n"
    assert c.render([ev.Error(ErrorCode.NOT_OP, "no", "mode", "dev")]).startswith(b":srv 482 me #dev ")
    assert c.render([ev.Bye("You left.")]).startswith(b"ERROR :Closing Link: ")
    names = c.render([ev.Joined("dev", ["me", "bob"], "the topic", 0.0, ops=["bob"])]).decode()
    assert ":srv 332 me #dev :the topic" in names and ":srv 353 me = #dev :me @bob" in names


def test_channel_modes_are_the_ones_mode_takes_and_isupport_says_so() -> None:
    listed = set(CHANMODES.replace(",", "")) | set("ov")  # PREFIX=(ov)@+ gives the other two
    assert listed == set(cmd.MODE_LETTERS) and f"CHANMODES={CHANMODES}" in isupport("srv")
    c, _ = codec()
    welcome = c.render([ev.Welcome("me", 4096)]).decode()
    assert " 004 me srv " in welcome and " ow Ibeiklmnostv Ibeklov\r\n" in welcome  # user modes: o, w


def test_mode_lines_become_mode_commands_or_696() -> None:
    c, _ = codec()
    assert decoded(c, "MODE #dev +lsn-k 25") == [cmd.Mode(room="dev", modes="+lsn-k", args=("25",))]
    assert decoded(c, "MODE #dev -l") == [cmd.Mode(room="dev", modes="-l")]
    for bad in ("0", "-1", "abc", "", "1000001", "\u0665"):  # (an Arabic-Indic five is a digit, not a number here)
        answer = replies(decoded(c, f"MODE #dev +l :{bad}"))
        assert answer.startswith(f":srv 696 me #dev l {bad or '*'} :"), (bad, answer)
    assert " 472 me x " in replies(decoded(c, "MODE #dev +x"))
    with pytest.raises(ChatError) as refused:  # the native command refuses a bad limit too
        cmd.Mode(room="dev", modes="+l", args=("0",))
    assert refused.value.code is ErrorCode.BAD_ARGUMENT
    assert cmd.Mode(room="dev", modes="+l", args=("007",)).changes() == [("+l", "7")]


def test_one_mode_command_is_one_mode_line_and_324_shows_the_words() -> None:
    c, _ = codec()
    changes = [ev.Mode("dev", "op", mode, target, 0.0) for mode, target in
               (("-i", None), ("-n", None), ("-t", None), ("+l", "5"), ("+k", None), ("+o", "bob"), ("+v", "bob"))]
    assert c.render(changes) == b":op!op@srv MODE #dev -int+lkov 5 * bob bob\r\n"
    five = [ev.Mode("dev", "op", "+o", nick, 0.0) for nick in ("a", "b", "c", "d", "e")]  # MODES=4 words a line
    assert c.render(five) == b":op!op@srv MODE #dev +oooo a b c d\r\n:op!op@srv MODE #dev +o e\r\n"
    other = [ev.Mode("dev", "op", "+m", None, 0.0), ev.Mode("ops", "op", "+m", None, 0.0)]
    assert c.render(other) == b":op!op@srv MODE #dev +m\r\n:op!op@srv MODE #ops +m\r\n"
    modes = ev.RoomModes("dev", "+klnst", None, None, [], [], [], [], None, limit=5)
    assert c.render([modes]) == b":srv 324 me #dev +klnst * 5\r\n"  # the key is for ops: * for others
    assert c.render([ev.RoomModes("dev", "", None, None, [], [], [], [])]) == b":srv 324 me #dev +\r\n"


def test_a_secret_room_is_marked_in_names_and_its_errors_are_numerics() -> None:
    c, _ = codec()
    names = c.render([ev.Joined("dev", ["me"], None, 0.0, ops=["me"], secret=True)]).decode()
    assert ":srv 353 me @ #dev @me\r\n" in names
    assert c.render([ev.Who("dev", ["me"], secret=True)]).startswith(b":srv 353 me @ #dev me\r\n")
    assert c.render([ev.Error(ErrorCode.ROOM_FULL, "full", "join", "dev")]) == \
        b":srv 471 me #dev :Cannot join channel (+l)\r\n"
    assert c.render([ev.Error(ErrorCode.BANNED, "banned", "msg", "dev")]).startswith(b":srv 404 me #dev ")


def test_too_long_lines_are_refused() -> None:
    c, _ = codec()
    frames = c.frames(b"PRIVMSG #dev :" + b"x" * BODY_MAX + b"\r\nPING ok\r\n")
    assert isinstance(frames[0], ChatError) and frames[0].code is ErrorCode.LINE_TOO_LONG
    assert frames[1] == "PING ok"
    tags = b"@a=" + b"x" * TAGS_MAX + b" PING x\r\n"
    assert isinstance(c.frames(tags)[0], ChatError)


@given(st.binary(max_size=3000))
def test_any_bytes_in_never_crash_nor_buffer_unboundedly(data: bytes) -> None:
    c, _ = codec()
    for frame in c.frames(data):
        if isinstance(frame, str):
            with contextlib.suppress(ChatError):
                c.decode(frame)
    assert c.buffered <= TAGS_MAX + BODY_MAX + 1
