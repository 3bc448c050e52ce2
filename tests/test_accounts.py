"""Accounts end to end: register, log in (from `nc` too), reserved nicks, throttling, passwords never in clear.
Real sockets, real SQLite files (PostgreSQL where it matters), real argon2id."""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from chat.storage.repository import USERS
from harness import LineClient, ServerThread, capture_logs, chat_command, wait_for

PASSWORD = "correct horse battery"


def password_hash(db: str, nick: str) -> str | None:
    engine = create_engine(db if "://" in db else f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return conn.execute(select(USERS.c.password_hash).where(USERS.c.nick_key == nick.lower())).scalar()
    finally:
        engine.dispose()


def test_register_then_log_in_from_nc_with_the_password_as_the_next_line(server: ServerThread) -> None:
    alice = server.client()
    alice.register_account("alice", PASSWORD)
    alice.send("/quit")
    alice.expect_closed()

    again = server.client()
    again.send("alice")
    assert again.expect("registered nickname") == (
        "*** alice is a registered nickname. Type its password on the next line, or choose another nickname.")
    again.send(PASSWORD)
    again.expect("*** You are logged in as alice.")
    again.expect("Welcome, alice!")
    again.expect("You joined #lobby")
    again.send("hello as myself")
    again.expect("[#lobby] alice: hello as myself")


def test_login_as_the_first_line_and_later_and_identify_is_the_same(server: ServerThread) -> None:
    server.client().register_account("alice", PASSWORD)  # stays online: a second login would be refused
    bob = server.client()
    bob.register_account("bob", PASSWORD)
    bob.send("/quit")
    bob.expect_closed()

    first_line = server.client()
    first_line.login("bob", PASSWORD)
    first_line.expect("You joined #lobby")
    first_line.send("/quit")
    first_line.expect_closed()

    later = server.client("guest1")
    later.send(f"/identify bob {PASSWORD}")
    later.expect("You are logged in as bob")
    assert later.expect("is now known as") == "*** guest1 is now known as bob"


def test_a_guest_cannot_speak_under_a_registered_nick(server: ServerThread) -> None:
    alice = server.client()
    alice.register_account("alice", PASSWORD)
    alice.send("/quit")
    alice.expect_closed()
    watcher = server.client("watcher")

    squatter = server.client()
    squatter.send("alice")
    squatter.expect("registered nickname")
    squatter.send("not the password")  # taken as the password, never said anywhere
    assert squatter.expect("[error bad_password]") == "[error bad_password] Wrong password for alice."
    squatter.expect("Type the password of alice on the next line, or choose another nickname.")
    squatter.send("/join dev")
    squatter.expect("[error not_registered]")
    squatter.send("/nick alice2")
    squatter.expect("You joined #lobby")

    guest = server.client("bob")
    guest.send("/nick ALICE")
    guest.expect("alice is a registered nickname")  # the account's own spelling
    guest.send("hi, it's me")  # one try for a guest with a nick: a wrong password, and it stays bob
    guest.expect("[error bad_password]")
    guest.send("now in the room")
    guest.expect("[#lobby] bob: now in the room")
    watcher.expect("[#lobby] bob: now in the room")
    assert not any("it's me" in line or "not the password" in line for line in watcher.seen)


def test_wrong_passwords_are_throttled_per_account_and_per_address(server: ServerThread) -> None:
    server.client().register_account("alice", PASSWORD)
    attacker = server.client("mallory")
    for _ in range(3):
        attacker.send("/login alice guess-guess")
        attacker.expect("[error bad_password]")
    attacker.send(f"/login alice {PASSWORD}")  # even the right one waits now
    line = attacker.expect("[error login_throttled]")
    assert "try again in" in line and " s." in line
    # the same address, another account: the address is throttled too
    attacker.send("/login nobody-here guess-guess")
    attacker.expect("[error login_throttled]")


def test_throttling_is_per_account_from_any_address(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(login_burst=2, login_per_minute=0.01)
    server.client().register_account("alice", PASSWORD)
    for i in range(2):
        c = server.client(f"m{i}")
        c.send("/login alice wrong-wrong")
        c.expect("[error bad_password]")
    late = server.client("m9")
    late.send("/login alice wrong-wrong")
    assert "try again in" in late.expect("[error login_throttled]")


def test_many_logins_in_flight_at_once_count_as_many(make_server: Callable[..., ServerThread]) -> None:
    """The tokens are taken when an attempt starts: a burst of parallel guesses cannot outrun the limiter."""
    server = make_server(login_burst=3, login_per_minute=0.01)
    server.client().register_account("alice", PASSWORD)
    guessers = [server.client(f"g{i}") for i in range(8)]
    for g in guessers:
        g.send("/login alice wrong-wrong")
    answers = [g.expect(lambda line: "[error bad_password]" in line or "[error login_throttled]" in line)
               for g in guessers]
    assert sum("bad_password" in a for a in answers) == 3
    assert sum("login_throttled" in a for a in answers) == 5


def test_weak_passwords_are_refused_with_a_clear_error(server: ServerThread) -> None:
    alice = server.client("alice")
    alice.send("/register short")
    assert alice.expect("[error weak_password]") == (
        "[error weak_password] A password needs at least 8 characters; that one has 5. A few words make a good one.")
    alice.send("/register")
    alice.expect("[error bad_argument] Usage: /register PASSWORD")
    alice.send("/register " + "x" * 1025)
    alice.expect("[error weak_password] A password may have at most 1024 characters.")


def test_guest_nicknames_cannot_be_registered(server: ServerThread) -> None:
    guest = server.client("Guest42")
    guest.send(f"/register {PASSWORD}")
    guest.expect("[error nick_reserved]")


def test_one_connection_per_account_and_logout_makes_a_guest(server: ServerThread) -> None:
    alice = server.client()
    alice.register_account("alice", PASSWORD)
    second = server.client("other")
    second.send(f"/login alice {PASSWORD}")
    assert "logged in on another connection" in second.expect("[error already_logged_in]")
    alice.send("/nick alicia")
    alice.expect("[error logged_in]")
    alice.send("/nick Alice")  # another spelling of the same nick is fine
    alice.expect("*** alice is now known as Alice")
    alice.send("/logout")
    line = alice.expect("You are logged out")
    guest = line.split("you are now ")[1].rstrip(".")
    assert guest.startswith("Guest")
    alice.expect(f"Alice is now known as {guest}")
    second.send(f"/login alice {PASSWORD}")
    second.expect("You are logged in as Alice")  # the account keeps the spelling it was last seen with
    second.expect("other is now known as Alice")
    alice.send("/logout")
    alice.expect("[error not_logged_in]")


def test_a_guest_holding_a_nick_registered_meanwhile_gives_it_up_when_its_owner_logs_in(
        server: ServerThread, sqlite_db: str) -> None:
    squatter = server.client("carol")
    result = subprocess.run([*chat_command(), "users", "add", "carol", "--db", sqlite_db, "--password-stdin",
                             "--password-profile", "test"], input=PASSWORD + "\n", capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    owner = server.client()
    owner.login("carol", PASSWORD)
    squatter.expect("carol is a registered nickname and its owner logged in: you are now Guest")
    owner.expect("You joined #lobby")
    owner.send("/whois carol")
    assert "registered since" in owner.expect("*** carol: online")


def test_password_change_and_the_old_one_stops_working(server: ServerThread) -> None:
    alice = server.client()
    alice.register_account("alice", PASSWORD)
    alice.send("/password a brand new one")
    alice.expect("*** The password of alice is changed.")
    alice.send("/password short")
    alice.expect("[error weak_password]")
    alice.send("/quit")
    alice.expect_closed()
    again = server.client("x")
    again.send(f"/login alice {PASSWORD}")
    again.expect("[error bad_password]")
    again.login("alice", "a brand new one")
    guest = server.client("guesty")
    guest.send("/password whatever-long")
    guest.expect("[error not_logged_in]")


def test_whois_online_offline_registered_and_guests(server: ServerThread) -> None:
    alice = server.client()
    alice.register_account("alice", PASSWORD)
    bob = server.client("bob")
    bob.send("/join dev")
    bob.expect("You joined #dev")
    alice.send("/join dev", "/whois bob")
    line = alice.expect("*** bob:")
    assert line.startswith("*** bob: online, idle ") and "not registered (a guest)" in line
    assert "in #dev, #lobby" in line
    bob.send("/whois alice")
    assert "registered since" in bob.expect("*** alice: online")
    alice.send("/quit")
    alice.expect_closed()
    bob.send("/format json", "/whois alice")
    event = bob.expect_event("whois")
    assert event["online"] is False and event["registered"] is True and event["last_seen"].endswith("Z")
    assert event["idle"] is None and event["rooms"] == []
    bob.send("/whois nobody")
    assert bob.expect_event("error")["code"] == "no_such_nick"


def test_hashes_are_argon2id_and_the_password_is_nowhere_in_clear(
        make_server: Callable[..., ServerThread], sqlite_db: str) -> None:
    secret = "Zq7-unmistakable-pass"
    with capture_logs(logging.DEBUG) as logs:
        server = make_server()
        alice = server.client()
        alice.register_account("alice", secret)
        alice.send(f"/password {secret}-2", "/logout")
        alice.expect("You are logged out")
        guest = server.client()
        guest.send("alice")
        guest.expect("registered nickname")
        guest.send(f"{secret}-wrong")  # a wrong password, as the nc flow's next line
        guest.expect("[error bad_password]")
        guest.send(f"/login alice {secret}-3")
        guest.expect("[error bad_password]")
        alice.login("alice", f"{secret}-2")
        alice.send("/msg #lobby done")
        alice.expect("done")
        server.stop()
    stored = password_hash(sqlite_db, "alice")
    assert stored is not None and stored.startswith("$argon2id$")
    everything = b"".join(p.read_bytes() for p in Path(sqlite_db).parent.glob("chat.sqlite*"))
    assert secret.encode() not in everything  # the database, its WAL and its lock file
    assert not any(secret in m for m in logs.messages())
    assert any("failed login to alice" in m for m in logs.messages())
    history = subprocess.run([*chat_command(), "history", "--db", sqlite_db, "--room", "lobby"],
                             capture_output=True, text=True, timeout=60).stdout
    assert "done" in history and secret not in history


def test_a_bug_while_a_password_line_is_handled_does_not_log_it(server: ServerThread) -> None:
    """The loop logs the line whose handling failed: a password line is logged as hidden."""
    service = server.loop.service
    secret = "Zq7-logged-never"

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    server.client().register_account("alice", PASSWORD)
    with capture_logs() as logs:
        server.loop.call_soon(lambda: setattr(service.accounts, "login", broken)).result(5)
        c = server.client()
        c.send(f"/login alice {secret}")
        c.expect("[error server_error]")
        c.send("bob", "/nick alice")
        c.expect("registered nickname")
        c.send(secret)
        c.expect("[error server_error]")
        logs.expect("error handling a line")
    assert not any(secret in m for m in logs.messages())
    assert any("/login [hidden]" in m for m in logs.messages())


def test_the_default_profile_is_rfc9106_low_memory_and_logins_rehash(
        make_server: Callable[..., ServerThread], sqlite_db: str) -> None:
    """The one test with the real cost: a hash made with other parameters is rehashed with the server's own at
    the next login."""
    cheap = make_server()
    alice = cheap.client()
    alice.register_account("alice", PASSWORD)
    cheap.stop()
    assert "$m=8,t=1,p=1$" in (password_hash(sqlite_db, "alice") or "")

    real = make_server(password_profile="rfc9106-low-memory")
    again = real.client()
    again.login("alice", PASSWORD)
    wait_for(lambda: "$m=65536,t=3,p=4$" in (password_hash(sqlite_db, "alice") or ""), what="a rehash")
    again.send("/quit")
    again.expect_closed()
    later = real.client()
    later.login("alice", PASSWORD)  # the new hash checks out


def test_a_login_storm_past_the_queue_is_refused_busy_and_chat_goes_on(
        make_server: Callable[..., ServerThread]) -> None:
    server = make_server(password_threads=1, password_queue=0, login_burst=100, login_per_minute=100)
    chatter, listener = server.client("chatter"), server.client("listener")
    stormers = [server.client(f"s{i}") for i in range(20)]
    for s in stormers:
        s.send("/login nobody-at-all wrong-wrong")
    chatter.send("still here")
    listener.expect("[#lobby] chatter: still here")
    answers = [s.expect("[error ") for s in stormers]
    assert any("server_busy" in a for a in answers) or all("no_such_account" in a for a in answers)
    assert all("server_busy" in a or "no_such_account" in a for a in answers)


def test_registration_is_throttled_per_address_outside_exempt_networks(
        make_server: Callable[..., ServerThread]) -> None:
    server = make_server(exempt=(), register_burst=2, register_per_minute=0.01)
    for nick in ("one", "two"):
        server.client().register_account(nick, PASSWORD)
    third = server.client("three")
    third.send(f"/register {PASSWORD}")
    third.expect("[error register_throttled]")


def test_json_clients_see_account_events(server: ServerThread) -> None:
    alice = LineClient(server.host, server.port, json_mode=True)
    alice.send("/nick alice", f"/register {PASSWORD}")
    assert alice.expect_event("account") == {"type": "account", "change": "registered", "account": "alice",
                                             "nick": "alice"}
    alice.send("/logout")
    out = alice.expect_event("account")
    assert out["change"] == "logged_out" and out["nick"].startswith("Guest")
    bob = LineClient(server.host, server.port, json_mode=True)
    bob.send("/nick alice")
    assert bob.expect_event("password_wanted") == {"type": "password_wanted", "nick": "alice"}
    bob.send(f"/login alice {PASSWORD}")
    assert bob.expect_event("account")["change"] == "logged_in"
    assert json.loads(bob.seen[-1])["type"] == "account"


@pytest.mark.postgres
def test_accounts_on_postgresql(make_server: Callable[..., ServerThread], postgres_db: str) -> None:
    server = make_server(db=postgres_db)
    server.client().register_account("alice", PASSWORD)
    bob = server.client()
    bob.register_account("bob", PASSWORD)
    bob.send("/quit")
    bob.expect_closed()
    again = server.client()
    again.login("bob", PASSWORD)
    assert (password_hash(postgres_db, "bob") or "").startswith("$argon2id$")
