"""Command parsing: a table of lines and what they mean, and properties for any input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from chat.protocol import commands as c
from chat.protocol.errors import ChatError, ErrorCode


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hello world", c.Say(text="hello world")),
        ("  indented", c.Say(text="  indented")),
        ("//not a command", c.Say(text="/not a command")),
        ("!DISCONNECT", c.Quit()),
        ("!disconnect", c.Quit()),
        ("/DISCONNECT", c.Quit()),
        ("/quit", c.Quit()),
        ("/quit gone fishing", c.Quit(reason="gone fishing")),
        ("/exit", c.Quit()),
        ("/nick alice", c.Nick(nick="alice")),
        ("/NICK Alice_2", c.Nick(nick="Alice_2")),
        ("/join dev", c.Join(room="dev")),
        ("/join #dev", c.Join(room="dev")),
        ("/j #Dev.ops", c.Join(room="Dev.ops")),
        ("/leave", c.Leave()),
        ("/part #dev", c.Leave(room="dev")),
        ("/leave dev see you", c.Leave(room="dev", reason="see you")),
        ("/msg bob hi there", c.Msg(target="bob", text="hi there")),
        ("/msg #dev  hi", c.Msg(target="#dev", text="hi")),
        ("/me waves", c.Me(text="waves")),
        ("/me #dev waves hello", c.Me(room="dev", text="waves hello")),
        ("/me #1 fan", c.Me(room="1", text="fan")),
        ("/me #hashtag", c.Me(text="#hashtag")),
        ("/rooms", c.Rooms()),
        ("/list", c.Rooms()),
        ("/who", c.Who()),
        ("/who #dev", c.Who(room="dev")),
        ("/names dev", c.Who(room="dev")),
        ("/topic", c.Topic()),
        ("/topic #dev", c.Topic(room="dev")),
        ("/topic #dev New topic here", c.Topic(room="dev", text="New topic here")),
        ("/topic dev is a topic", c.Topic(text="dev is a topic")),
        ("/topic -", c.Topic(text="-")),
        ("/history", c.History()),
        ("/history 5", c.History(count=5)),
        ("/history #dev 5", c.History(room="dev", count=5)),
        ("/history dev", c.History(room="dev")),
        ("/history 10 before 99", c.History(count=10, before=99)),
        ("/history dev after 3", c.History(room="dev", after=3)),
        (f"/history 5 before {2**63 - 1}", c.History(count=5, before=2**63 - 1)),  # the largest id storage takes
        ("/help", c.Help()),
        ("/help msg", c.Help(command="msg")),
        ("/format json", c.Format(format="json")),
        ("/FORMAT Text", c.Format(format="text")),
        ("/ping", c.Ping()),
        ("/ping 42", c.Ping(token="42")),
        ("/join vault s3same", c.Join(room="vault", key="s3same")),
        ("/register correct horse battery", c.Register(password=SecretStr("correct horse battery"))),
        ("/login alice  two  spaces ", c.Login(nick="alice", password=SecretStr("two  spaces "))),
        ("/IDENTIFY alice pw", c.Login(nick="alice", password=SecretStr("pw"))),
        ("/logout", c.Logout()),
        ("/password new one", c.Password(password=SecretStr("new one"))),
        ("/whois bob", c.Whois(nick="bob")),
        ("/history @bob", c.History(nick="bob")),
        ("/history @bob 5 before 9", c.History(nick="bob", count=5, before=9)),
        ("/op #dev bob", c.Op(room="dev", nick="bob")),
        ("/deop dev bob", c.Deop(room="dev", nick="bob")),
        ("/kick dev bob go away", c.Kick(room="dev", nick="bob", reason="go away")),
        ("/ban dev troll", c.Ban(room="dev", nick="troll")),
        ("/unban dev troll", c.Unban(room="dev", nick="troll")),
        ("/invite bob #dev", c.Invite(nick="bob", room="dev")),
        ("/mode dev", c.Mode(room="dev")),
        ("/mode dev +ik-o sesame bob", c.Mode(room="dev", modes="+ik-o", args=("sesame", "bob"))),
    ],
)
def test_parse(line: str, expected: c.Command) -> None:
    assert c.parse_line(line) == expected


@pytest.mark.parametrize("line", ["", "   ", "\t"])
def test_blank_lines_mean_nothing(line: str) -> None:
    assert c.parse_line(line) is None


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("/frobnicate", ErrorCode.UNKNOWN_COMMAND),
        ("/", ErrorCode.UNKNOWN_COMMAND),
        ("/nick", ErrorCode.BAD_ARGUMENT),
        ("/nick two words", ErrorCode.BAD_ARGUMENT),
        ("/nick 9lives", ErrorCode.INVALID_NICK),
        ("/nick " + "a" * 21, ErrorCode.INVALID_NICK),
        ("/nick bad!name", ErrorCode.INVALID_NICK),
        ("/join", ErrorCode.BAD_ARGUMENT),
        ("/join bad key! extra", ErrorCode.BAD_ARGUMENT),  # a room, its key, and one word too many
        ("/join #", ErrorCode.INVALID_ROOM),
        ("/join -dash", ErrorCode.INVALID_ROOM),
        ("/join " + "r" * 33, ErrorCode.INVALID_ROOM),
        ("/msg", ErrorCode.BAD_ARGUMENT),
        ("/msg bob", ErrorCode.BAD_ARGUMENT),
        ("/msg b@b hi", ErrorCode.INVALID_NICK),
        ("/msg #b@d hi", ErrorCode.INVALID_ROOM),
        ("/me", ErrorCode.BAD_ARGUMENT),
        ("/rooms extra", ErrorCode.BAD_ARGUMENT),
        ("/history 0", ErrorCode.BAD_ARGUMENT),
        ("/history 501", ErrorCode.BAD_ARGUMENT),
        ("/history 5 sideways 3", ErrorCode.BAD_ARGUMENT),
        ("/history before x", ErrorCode.BAD_ARGUMENT),
        ("/history 5 before 99999999999999999999", ErrorCode.BAD_ARGUMENT),  # past any 64-bit id
        (f"/history 5 before {2**63}", ErrorCode.BAD_ARGUMENT),
        (f"/history after {2**63}", ErrorCode.BAD_ARGUMENT),
        ("/format xml", ErrorCode.BAD_ARGUMENT),
        ("/format", ErrorCode.BAD_ARGUMENT),
        ("/register", ErrorCode.BAD_ARGUMENT),
        ("/login alice", ErrorCode.BAD_ARGUMENT),
        ("/login 9lives secret-pw", ErrorCode.INVALID_NICK),
        ("/whois", ErrorCode.BAD_ARGUMENT),
        ("/history @b@d", ErrorCode.INVALID_NICK),
        ("/op dev", ErrorCode.BAD_ARGUMENT),
        ("/kick dev b@d", ErrorCode.INVALID_NICK),
        ("/invite bob", ErrorCode.BAD_ARGUMENT),
        ("/mode", ErrorCode.BAD_ARGUMENT),
        ("/mode dev i", ErrorCode.BAD_ARGUMENT),
        ("/mode dev +q", ErrorCode.BAD_ARGUMENT),
        ("/mode dev +k", ErrorCode.BAD_ARGUMENT),
        ("/mode dev +i extra", ErrorCode.BAD_ARGUMENT),
        ("/join dev " + "k" * 65, ErrorCode.BAD_ARGUMENT),
    ],
)
def test_refusals_carry_a_stable_code(line: str, code: ErrorCode) -> None:
    with pytest.raises(ChatError) as caught:
        c.parse_line(line)
    assert caught.value.code is code
    assert caught.value.message  # and a sentence


def test_passwords_never_show_in_a_commands_repr_or_a_loggable_line() -> None:
    login = c.parse_line("/login alice hunter2-long")
    assert "hunter2" not in repr(login) and "hunter2" not in str(login)
    assert c.loggable("/login alice hunter2-long") == "/login [hidden]"
    assert c.loggable("/Register hunter2-long") == "/register [hidden]"
    assert c.loggable("/msg bob hunter2") == "/msg bob hunter2"  # only lines that carry one
    assert {"register", "login", "identify", "password", "oper"} == c.SECRET_VERBS


def test_text_is_sanitized() -> None:
    said = c.parse_line("hi \x1b[2J\x07there")
    assert isinstance(said, c.Say)
    assert "\x1b" not in said.text and "\x07" not in said.text
    assert said.text == "hi ␛[2J␇there"


def test_every_command_has_help() -> None:
    text = "\n".join(c.help_lines())
    for model in c.COMMAND_MODELS:
        if model is not c.Say:
            assert f"/{model.name}" in text
            assert c.help_lines(model.name)[0].startswith(model.syntax())
    with pytest.raises(ChatError):
        c.help_lines("nope")


@given(st.text(max_size=200))
def test_any_text_parses_or_is_refused(line: str) -> None:
    try:
        result = c.parse_line(line)
    except ChatError as e:
        assert isinstance(e.code, ErrorCode)
        return
    assert result is None or isinstance(result, c.Command)


@given(st.sampled_from(sorted(c.VERBS)), st.text(max_size=80))
def test_any_arguments_to_any_verb_parse_or_are_refused(verb: str, rest: str) -> None:
    try:
        result = c.parse_line(f"/{verb} {rest}")
    except ChatError as e:
        assert isinstance(e.code, ErrorCode)
        return
    assert isinstance(result, c.Command)


@given(st.binary(max_size=300), st.integers(min_value=16, max_value=128))
def test_any_bytes_through_framing_and_parsing_never_crash(data: bytes, max_line: int) -> None:
    from chat.protocol.framing import LineFramer

    for frame in LineFramer(max_line).feed(data + b"\n"):
        if isinstance(frame, ChatError):
            continue
        try:
            result = c.parse_line(frame)
        except ChatError as e:
            assert isinstance(e.code, ErrorCode)
        else:
            assert result is None or isinstance(result, c.Command)
