"""The client with accounts: logging in (a password file, a prompt that does not echo, the server asking), ops
shown, kicks and refused joins handled. The core alone; plain mode as a real process; the full-screen client
headless; all against a real server where there is one."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from chat.client import events as ev
from chat.client.commands import carries_password
from chat.client.core import ClientCore
from chat.client.model import EntryKind, room_key
from chat.client.outgoing import SYNC_TOKEN
from harness import WAIT, ServerThread, chat_command

PASSWORD = "correct horse battery"
T = "2026-01-01T00:00:00.000Z"


def event(**fields: Any) -> ev.Incoming | None:
    return ev.Decoder().decode(json.dumps(fields).encode())


def sent(core: ClientCore) -> list[str]:
    return [line for line in core.take_outbox() if not line.startswith(f"/ping {SYNC_TOKEN}")]


def online(core: ClientCore, nick: str = "alice") -> ClientCore:
    for item in (event(type="welcome", nick=nick, max_line=4096),
                 event(type="joined", room="dev", members=[nick, "bob", "carol"], topic=None, time=T,
                       ops=["bob"], voiced=["carol"])):
        core.receive(item)
    for line in core.take_outbox():
        if line.startswith(f"/ping {SYNC_TOKEN}"):
            core.receive(event(type="pong", token=line.removeprefix("/ping ")))
    return core


# ------------------------------------------------------------------------------------------------ the core


def test_with_a_password_the_core_logs_in_and_again_after_a_reconnect() -> None:
    core = ClientCore("alice", None, "test", password=PASSWORD)
    core.connection_opened()
    assert sent(core) == ["/format json", f"/login alice {PASSWORD}"]
    online(core)
    core.connection_lost("gone")
    core.connection_opened()
    assert sent(core)[-1] == f"/login alice {PASSWORD}"
    core.receive(event(type="error", code="already_logged_in", message="alice is logged in elsewhere",
                       command="login", subject="alice"))  # our old session, still on: a stand-in, then back
    assert sent(core) == ["/nick alice_"]


def test_when_the_server_asks_for_a_password_the_next_line_is_it_and_not_a_message() -> None:
    core = ClientCore("alice", None, "test")
    core.connection_opened()
    sent(core)
    core.receive(event(type="password_wanted", nick="alice"))
    assert core.password_for == "alice"
    core.user_input(PASSWORD)
    assert sent(core) == [f"/login alice {PASSWORD}"]
    assert core.password_for is None and core.password == PASSWORD
    assert carries_password(f"/login alice {PASSWORD}") and carries_password("/REGISTER x")
    assert not carries_password("/msg bob /login")


def test_ops_and_voice_are_shown_and_follow_mode_changes() -> None:
    core = online(ClientCore("alice", None, "test"))
    dev = core.model.get(room_key("dev"))
    assert dev is not None
    assert [dev.shown_member(n) for n in dev.member_nicks()] == ["alice", "@bob", "+carol"]
    core.receive(event(type="mode", room="dev", nick="bob", mode="+o", target="alice", time=T))
    core.receive(event(type="mode", room="dev", nick="bob", mode="-v", target="carol", time=T))
    assert [dev.shown_member(n) for n in dev.member_nicks()] == ["@alice", "@bob", "carol"]
    assert dev.entries[-1].text == "bob took the voice of carol"


def test_a_kick_puts_the_room_out_of_reach_and_says_so() -> None:
    core = online(ClientCore("alice", None, "test"))
    core.receive(event(type="kick", room="dev", nick="carol", by="bob", reason=None, time=T))
    dev = core.model.get(room_key("dev"))
    assert dev is not None and not dev.has_member("carol") and dev.joined
    core.receive(event(type="kick", room="dev", nick="alice", by="bob", reason="spam", time=T))
    assert not dev.joined
    assert "You were put out of #dev by bob (spam)" in dev.entries[-1].text
    core.user_input("still talking?")
    assert sent(core) == []  # not in the room: nothing goes out (the line stays in the input)
    core.user_input("/join dev")
    sent(core)
    core.receive(event(type="error", code="banned", message="You are banned from #dev.", command="join",
                       subject="dev"))
    assert not dev.joined and dev.entries[-1].kind is EntryKind.ERROR
    core.user_input("/join ops")
    sent(core)
    core.receive(event(type="joined", room="ops", members=["alice"], topic=None, time=T))
    assert core.model.current is not dev
    core.user_input("/join dev")
    sent(core)
    core.receive(event(type="error", code="room_full", message="#dev is full: it takes at most 2 members.",
                       command="join", subject="dev"))  # said in #dev too, though another room is current
    assert not dev.joined and dev.entries[-1].text.endswith("#dev is full: it takes at most 2 members.")


# ------------------------------------------------------------------------------------------- plain mode


def _plain(server: ServerThread, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*chat_command(), "client", "--plain", "--host", server.host, "--port", str(server.port),
                           *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_plain_mode_logs_in_with_a_password_file(server: ServerThread, tmp_path: Path) -> None:
    owner = server.client()
    owner.register_account("alice", PASSWORD)
    owner.send("/quit")
    owner.expect_closed()
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    watcher = server.client("watcher")
    result = _plain(server, "--nick", "alice", "--password-file", str(secret), stdin="/msg #lobby logged in\n")
    assert result.returncode == 0, result.stderr
    assert "You are logged in as alice." in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    watcher.expect("[#lobby] alice: logged in")

    refused = _plain(server, "--nick", "alice", stdin="hello\n")
    assert refused.returncode == 1
    assert "alice is registered: log in with --password-file FILE or --ask-password" in refused.stderr
    watcher.sync()
    assert not any("hello" in line for line in watcher.seen)  # the line was never sent as a password or text

    missing = _plain(server, "--password-file", str(secret))
    assert missing.returncode == 1 and "give its nick with --nick" in missing.stderr


# ------------------------------------------------------------------------------------------ full screen


def test_the_full_screen_client_logs_in_shows_ops_and_survives_a_kick(server: ServerThread) -> None:
    pytest.importorskip("textual")
    from chat.client.session import ReconnectPolicy
    from chat.client.tui.app import ChatApp
    from chat.client.tui.widgets import ChatInput

    owner = server.client()
    owner.register_account("owner", PASSWORD)
    owner.send("/join dev")
    owner.expect("You joined #dev")
    account = server.client()
    account.register_account("alice", PASSWORD)
    account.send("/quit")
    account.expect_closed()

    app = ChatApp(server.host, server.port, "alice", "dev", ReconnectPolicy(quit_wait=WAIT), password=PASSWORD)

    async def until(pilot: Any, condition: Any, what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await pilot.pause(0.01)

    async def main() -> None:
        async with app.run_test(size=(110, 30)) as pilot:
            await until(pilot, lambda: (c := app.model.get(room_key("dev"))) is not None and c.joined, "joined #dev")
            dev = app.model.get(room_key("dev"))
            assert dev is not None
            assert dev.shown_member("owner") == "@owner"
            members = str(app.query_one("#members").render())
            assert "@owner" in members
            await asyncio.to_thread(owner.send, "/kick dev alice enough")
            await until(pilot, lambda: not dev.joined, "the kick")
            assert any("You were put out of #dev by owner (enough)" in e.text for e in dev.entries)
            assert app.core.online  # still connected, in its other rooms
            field = app.query_one(ChatInput)
            assert not field.password
            await pilot.press("ctrl+c")

    asyncio.run(main())


def test_search_results_are_shown_with_their_ids_and_how_to_open_one() -> None:
    core = online(ClientCore("alice", None, "test"))
    lines = [
        dict(type="message", id=42, time=T, room="dev", nick="bob", text="the deploy failed", search=True),
        dict(type="private", id=7, time=T, nick="alice", to="carol", text="deploy later", search=True),
        dict(type="search_end", query="deploy", count=2, more=True, before=7, indexing=False),
    ]
    decoder = ev.Decoder()  # result lines are held until their search_end
    for fields in lines:
        core.receive(decoder.decode(json.dumps(fields).encode()))
    shown = [e.text for e in core.model.current.entries[-5:]]
    assert shown == [
        "Search: deploy",
        "[#dev] [2026-01-01 00:00:00 #42] bob: the deploy failed",
        "[private] [2026-01-01 00:00:00 #7] alice -> carol: deploy later",
        "End of search: 2 results; /search deploy before 7 shows older ones.",
        "/history #dev around 42 shows a result in its context.",
    ]
