"""Private messages that last: stored conversations (/history @NICK), offline delivery at the next login, and an
attacker who tries to read what is not theirs. Real sockets, real SQLite (and PostgreSQL), a restart between."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from harness import LineClient, ServerThread, chat_command

PASSWORD = "correct horse battery"


def json_client(server: ServerThread) -> LineClient:
    return LineClient(server.host, server.port, json_mode=True)


def test_a_conversation_pages_back_for_both_sides(server: ServerThread) -> None:
    alice, bob = server.client(), server.client()
    alice.register_account("alice", PASSWORD)
    bob.register_account("bob", PASSWORD)
    for i in range(5):
        alice.send(f"/msg bob a{i}")
        bob.expect(f"a{i}")
        bob.send(f"/msg alice b{i}")
        alice.expect(f"b{i}")
    alice.send("/history @bob 4")
    page = alice.lines_until("End of history with bob")
    assert [line.split(": ", 1)[1] for line in page[:-1]] == ["a3", "b3", "a4", "b4"]
    assert page[0].startswith("[private] [") and " history] alice -> bob: a3" in page[0]
    assert page[-1] == "*** End of history with bob: 4 messages; /history @bob shows older ones."
    alice.send("/history @bob 4")  # pages on, no repeats
    older = alice.lines_until("End of history with bob")
    assert [line.split(": ", 1)[1] for line in older[:-1]] == ["a1", "b1", "a2", "b2"]
    alice.send("/history @bob 4")
    assert alice.lines_until("End of history")[-1].endswith("that is the beginning of it.")
    bob.send("/format json", "/history @ALICE 2")
    events = bob.events_until("private_history_end")
    assert [(e["nick"], e["to"], e["text"], e["history"]) for e in events if e["type"] == "private"] == [
        ("alice", "bob", "a4", True), ("bob", "alice", "b4", True)]
    assert events[-1] == {"type": "private_history_end", "nick": "alice", "count": 2, "more": True,
                          "reason": "page"}


def test_guests_see_no_private_history(server: ServerThread) -> None:
    alice, bob = server.client(), server.client()
    alice.register_account("alice", PASSWORD)
    bob.register_account("bob", PASSWORD)
    alice.send("/msg bob secret plans")
    bob.expect("secret plans")
    guest = server.client("mallory")
    guest.send("/history @alice", "/history @bob 500 after 0")
    assert "Private history is kept for logged-in users only" in guest.expect("[error not_logged_in]")
    guest.expect("[error not_logged_in]")
    # nor do messages exchanged with a guest end up in anyone's history
    alice.send("/msg mallory hello guest")
    guest.expect("hello guest")
    alice.send("/history @mallory")
    alice.expect("[error no_such_account]")


def test_an_attacker_cannot_read_a_conversation_by_guessing_ids(server: ServerThread) -> None:
    alice, bob = json_client(server), json_client(server)
    alice.send("/nick alice", f"/register {PASSWORD}")
    alice.expect_event("account")
    bob.send("/nick bob", f"/register {PASSWORD}")
    bob.expect_event("account")
    alice.send("/msg bob the vault code is 1234")
    secret_id = bob.expect_event("private", text="the vault code is 1234")["id"]

    mallory = json_client(server)
    mallory.send("/nick mallory", f"/register {PASSWORD}")
    mallory.expect_event("account")
    for line in (f"/history @alice 500 after {secret_id - 1}", f"/history @bob 500 before {secret_id + 1}",
                 "/history @alice 500 after 0", f"/history lobby 500 after {secret_id - 1}",
                 f"/history lobby 500 before {secret_id + 1}", "/history @mallory 500 after 0"):
        mallory.send(line)
        mallory.expect_event("history_end" if "lobby" in line else "private_history_end")
    assert not any("vault" in line for line in mallory.seen)


def test_re_registering_a_deleted_accounts_nick_reads_none_of_its_conversations(
        server: ServerThread, sqlite_db: str) -> None:
    alice, bob = server.client(), server.client()
    alice.register_account("alice", PASSWORD)
    bob.register_account("bob", PASSWORD)
    alice.send("/msg bob for bob only")
    bob.expect("for bob only")
    bob.send("/quit")
    bob.expect_closed()
    alice.send("/msg bob while you were away")  # waits for bob's account
    alice.expect("bob is offline")
    result = subprocess.run([*chat_command(), "users", "delete", "bob", "--db", sqlite_db], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr

    impostor = server.client()
    impostor.register_account("bob", "a different password")
    impostor.send("/history @alice 500 after 0")
    impostor.expect("No earlier private messages with alice.")
    impostor.sync()
    assert not any("for bob only" in line or "while you were away" in line for line in impostor.seen)
    alice.send("/history @bob 500 after 0")  # alice's side of the old conversation went with the old account
    alice.expect("No earlier private messages with bob.")


def test_offline_messages_wait_for_the_next_login_across_a_restart(
        make_server: Callable[..., ServerThread], any_db: str) -> None:
    first = make_server(db=any_db)
    bob = first.client()
    bob.register_account("bob", PASSWORD)
    bob.send("/quit")
    bob.expect_closed()
    alice = first.client()
    alice.register_account("alice", PASSWORD)
    guest = first.client("carol")
    alice.send("/msg bob one", "/msg bob two")
    assert alice.expect("bob is offline") == "*** bob is offline: they will get it when they next log in."
    guest.send("/msg bob three from a guest")
    guest.expect("three from a guest")
    guest.send("/msg nobody hello")  # an unregistered offline nick is refused, as before
    guest.expect("[error no_such_nick] Nobody called nobody is online.")
    guest.sync()
    first.stop()

    second = make_server(db=any_db)
    bob = second.client()
    bob.login("bob", PASSWORD)
    assert bob.expect("sent to you while you were away") == (
        "*** 3 private messages were sent to you while you were away:")
    lines = bob.lines_until("End of the private messages sent while you were away")
    assert [line.split("] ", 2)[2] for line in lines[:-1]] == [
        "alice -> bob: one", "alice -> bob: two", "carol -> bob: three from a guest"]
    assert all(" history] " in line for line in lines[:-1])  # marked as earlier
    bob.send("/history @alice 500 after 0")  # alice and bob were both logged in: it is their conversation
    page = bob.lines_until("End of history with alice")
    assert [line.split(": ", 1)[1] for line in page[:-1]] == ["one", "two"]
    bob.send("/quit")
    bob.expect_closed()
    again = second.client()
    again.login("bob", PASSWORD)  # delivered once: nothing waits now
    again.sync()
    assert not any("while you were away" in line for line in again.seen)


def test_a_message_to_someone_who_comes_online_meanwhile_is_delivered_live(server: ServerThread) -> None:
    bob = server.client()
    bob.register_account("bob", PASSWORD)
    bob.send("/quit")
    bob.expect_closed()
    alice = server.client("alice")
    bob = server.client()
    bob.login("bob", PASSWORD)
    alice.send("/msg bob are you there")
    assert bob.expect("are you there") == "[private] alice -> bob: are you there"


def test_an_offline_mailbox_is_bounded(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(offline_max=2)
    bob = server.client()
    bob.register_account("bob", PASSWORD)
    bob.send("/quit")
    bob.expect_closed()
    alice = server.client("alice")
    alice.send("/msg bob 1", "/msg bob 2", "/msg bob 3")
    assert "bob is offline and has 2 private messages waiting already" in alice.expect("[error mailbox_full]")
