"""The IRC door's server password (`chat serve --irc-password`) and its one-server LINKS: real sockets."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chat.server.config import ServerConfig
from harness import IrcClient, ServerThread

DOOR_PASSWORD = "door-secret"
ACCOUNT_PASSWORD = "correct-horse-battery"


@pytest.fixture
def locked(make_server: Callable[..., ServerThread]) -> ServerThread:
    return make_server(irc_port=0, irc_password=DOOR_PASSWORD, server_info="a test server")


def refused(server: ServerThread, *first: str) -> list[str]:
    """Register after `first` lines (PASS or none); return what came before the server closed."""
    c = IrcClient(*server.loop.door_address("irc"))
    c.send(*first, "NICK intruder", "USER intruder 0 * :Intruder")
    return c.expect_closed()


@pytest.mark.parametrize("first", [(), ("PASS wrong-secret",), ("PASS door-secre",), ("PASS door-secret-",)])
def test_a_missing_or_wrong_server_password_is_464_then_error(locked: ServerThread, first: tuple[str, ...]) -> None:
    lines = refused(locked, *first)
    assert any(" 464 * :Password incorrect" in line for line in lines), lines
    assert lines[-1].startswith("ERROR :"), lines
    assert not any(" 001 " in line for line in lines)


def test_sasl_without_the_server_password_is_refused_before_any_login(locked: ServerThread) -> None:
    c = IrcClient(*locked.loop.door_address("irc"))
    c.send("CAP LS 302", "CAP REQ :sasl", "NICK alice", "USER alice 0 * :Alice", "AUTHENTICATE PLAIN")
    lines = c.expect_closed()
    assert any(" 464 * :Password incorrect" in line for line in lines), lines
    assert lines[-1].startswith("ERROR :") and not any("AUTHENTICATE +" in line for line in lines)


def test_the_right_server_password_registers_and_accounts_still_log_in_with_sasl(locked: ServerThread) -> None:
    native = locked.client()  # the native door has no server password
    native.register_account("alice", ACCOUNT_PASSWORD)
    native.send("/quit")
    native.expect_closed()
    plain = IrcClient(*locked.loop.door_address("irc"))
    plain.send(f"PASS {DOOR_PASSWORD}")
    plain.register("bob")
    member = IrcClient(*locked.loop.door_address("irc"))
    member.send(f"PASS {DOOR_PASSWORD}")
    member.register("alice", sasl=("alice", ACCOUNT_PASSWORD))
    assert any(" 903 " in line for line in member.seen)
    member.send("WHOIS alice")
    member.expect(" 330 alice alice alice ")
    plain.send("PASS again")
    plain.expect(" 462 bob ")


def test_links_shows_this_server_alone(locked: ServerThread) -> None:
    c = IrcClient(*locked.loop.door_address("irc"))
    c.send(f"PASS {DOOR_PASSWORD}")
    c.register("linker")
    c.send("LINKS")
    name = locked.config.server_name
    c.expect(f":{name} 364 linker {name} {name} :0 a test server")
    c.expect(f":{name} 365 linker * :End of /LINKS list")
    c.send("WHOIS linker")
    c.expect(f" 312 linker linker {name} :a test server")


def test_a_server_password_or_info_with_control_characters_is_refused() -> None:
    with pytest.raises(ValueError, match="--irc-password"):
        ServerConfig(irc_port=0, irc_password="bad\rpassword")
    with pytest.raises(ValueError, match="--irc-password"):
        ServerConfig(irc_port=0, irc_password="")
    with pytest.raises(ValueError, match="--server-info"):
        ServerConfig(server_info="two\nlines")
