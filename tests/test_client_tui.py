"""The full-screen client, driven headless by Textual's pilot, against a real server on 127.0.0.1.

The other people in the chat are `LineClient`s on real sockets; their blocking reads run in threads
(`asyncio.to_thread`) so the app's event loop keeps running meanwhile. Every wait polls a condition with a
deadline.
"""

from __future__ import annotations

import asyncio
import json
import time
import tomllib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from harness import WAIT, LineClient, ScriptedServer, ServerThread

pytest.importorskip("textual")

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Static

from chat.client.config import ClientConfig, load_config
from chat.client.core import Phase
from chat.client.model import EntryKind, Kind
from chat.client.session import ReconnectPolicy
from chat.client.tui.app import ChatApp
from chat.client.tui.render import Rendered
from chat.client.tui.widgets import ChatInput, Scrollback

FAST = ReconnectPolicy(first_delay=0.05, max_delay=0.2, jitter=0.0, nick_retry=0.2, quit_wait=WAIT)
Scenario = Callable[[ChatApp, Pilot[Any]], Awaitable[None]]


def run(app: ChatApp, scenario: Scenario, size: tuple[int, int] = (110, 30)) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await scenario(app, pilot)

    asyncio.run(main())


async def until(pilot: Pilot[Any], condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.01)


async def type_line(pilot: Pilot[Any], line: str) -> None:
    """Type a whole line into the input and press Enter (as fast as a paste, but through the keyboard)."""
    field = pilot.app.query_one(ChatInput)
    field.value = line
    field.cursor_position = len(line)
    await pilot.press("enter")


def current_scrollback(app: ChatApp) -> Scrollback | None:
    """The scrollback on screen."""
    shown = [s for s in app.query(Scrollback) if s.display and s.key == app.model.current_key]
    return shown[0] if shown else None


def shown(app: ChatApp) -> list[str]:
    """The lines of the scrollback on screen, as plain text."""
    scrollback = current_scrollback(app)
    return scrollback.plain_lines if scrollback else []


def status(app: ChatApp) -> str:
    return str(app.query_one("#status", Static).render())


def sidebar(app: ChatApp) -> str:
    return str(app.query_one("#conversations", Static).render())


def on_screen(app: ChatApp, text: str) -> bool:
    return any(text in line for line in shown(app))


def app_for(server: ServerThread | ScriptedServer, nick: str | None = "alice", room: str | None = None,
            policy: ReconnectPolicy = FAST, config: ClientConfig | None = None) -> ChatApp:
    return ChatApp(server.host, server.port, nick, room, policy, config)


@contextmanager
def people(server: ServerThread, *nicks: str) -> Iterator[list[LineClient]]:
    clients = [server.client(nick, json_mode=True) for nick in nicks]
    try:
        yield clients
    finally:
        for c in clients:
            c.close()


async def online(app: ChatApp, pilot: Pilot[Any], room: str = "#lobby") -> None:
    await until(pilot, lambda: app.core.online and app.model.current.title == room, f"online in {room}")


# ------------------------------------------------------------------------------------------------ talking


def test_typing_a_line_sends_it_to_the_room_and_shows_the_echo(server: ServerThread) -> None:
    with people(server, "bob") as (bob,):

        async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
            await online(app, pilot)
            await until(pilot, lambda: "● connected" in status(app), "the status line")
            assert f"127.0.0.1:{server.port}" in status(app) and "alice" in status(app)
            assert "#lobby" in status(app)
            await pilot.press(*"hello bob", "enter")
            said = await asyncio.to_thread(bob.expect_event, "message", text="hello bob")
            assert said["nick"] == "alice" and said["room"] == "lobby"
            await until(pilot, lambda: on_screen(app, "<alice> hello bob"), "the echo")
            assert app.query_one(ChatInput).value == ""
            await asyncio.to_thread(bob.send, "hi alice, /me too", "/me waves")
            await until(pilot, lambda: on_screen(app, " * bob waves"), "bob's action")
            mention = next(e for e in app.model.current.entries if e.text == "hi alice, /me too")
            assert mention.mention and not mention.own
            assert "bob" in str(app.query_one("#members", Static).render())

        run(app_for(server), scenario)


def test_without_a_nick_it_asks_for_one_and_says_why_one_is_refused(server: ServerThread) -> None:
    with people(server, "bob"):

        async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
            field = app.query_one(ChatInput)
            await until(pilot, lambda: app.core.needs_nick, "the nick prompt")
            await until(pilot, lambda: "Type a nickname" in field.placeholder, "the placeholder")
            await type_line(pilot, "bob")
            await until(pilot, lambda: on_screen(app, "The nickname bob is taken"), "the refusal")
            await type_line(pilot, "not valid!")
            await until(pilot, lambda: on_screen(app, "is not a valid nickname"), "the second refusal")
            await type_line(pilot, "alice")
            await online(app, pilot)
            assert app.model.nick == "alice"

        run(app_for(server, nick=None), scenario)


def test_rooms_switch_and_count_what_is_unread(server: ServerThread) -> None:
    with people(server, "bob") as (bob,):

        async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
            await online(app, pilot)
            await type_line(pilot, "/join dev")
            await online(app, pilot, "#dev")
            await asyncio.to_thread(bob.send, "/join dev", "/msg #lobby one in the lobby",
                                    "/msg #lobby two in the lobby, alice")
            await until(pilot, lambda: app.model.get("#lobby").unread == 2, "two unread in the lobby")
            assert app.model.get("#lobby").mentioned
            await until(pilot, lambda: "#lobby (2)" in sidebar(app), "the unread count in the list")
            assert not on_screen(app, "one in the lobby")  # it went to the lobby, not here
            await type_line(pilot, "in dev")  # said in the room shown: dev, whatever the server thinks
            said = await asyncio.to_thread(bob.expect_event, "message", text="in dev")
            assert said["room"] == "dev"
            await pilot.press("ctrl+p")  # previous conversation: the lobby
            await until(pilot, lambda: app.model.current.title == "#lobby", "the lobby shown")
            assert app.model.get("#lobby").unread == 0 and "#lobby (2)" not in sidebar(app)
            assert on_screen(app, "one in the lobby") and on_screen(app, "two in the lobby")
            await pilot.press("ctrl+n")
            await until(pilot, lambda: app.model.current.title == "#dev", "dev shown again")
            await type_line(pilot, "/join lobby")  # a room we are in: just shown
            await until(pilot, lambda: app.model.current.title == "#lobby", "the lobby shown by /join")
            await pilot.click("#conversations", offset=(3, 2))  # the third line of the list: #dev
            await until(pilot, lambda: app.model.current.title == "#dev", "dev shown by a click")
            await type_line(pilot, "/leave dev")
            await until(pilot, lambda: app.model.get("#dev") is None, "dev closed")
            joined = await asyncio.to_thread(bob.expect_event, "part", room="dev")
            assert joined["nick"] == "alice"

        run(app_for(server), scenario)


def test_a_private_message_opens_its_conversation(server: ServerThread) -> None:
    with people(server, "bob") as (bob,):

        async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
            await online(app, pilot)
            await asyncio.to_thread(bob.send, "/msg alice psst")
            await until(pilot, lambda: app.model.get("bob") is not None, "bob's conversation")
            private = app.model.get("bob")
            assert private.kind is Kind.PRIVATE and private.unread == 1 and app.model.current.title == "#lobby"
            await until(pilot, lambda: "bob (1)" in sidebar(app), "the unread private message in the list")
            await type_line(pilot, "/query bob")
            await until(pilot, lambda: app.model.current is private, "the private conversation shown")
            assert on_screen(app, "<bob> psst")
            await type_line(pilot, "hi bob")  # to bob, privately
            got = await asyncio.to_thread(bob.expect_event, "private", text="hi bob")
            assert got["to"] == "bob" and got["nick"] == "alice"
            await until(pilot, lambda: on_screen(app, "<alice> hi bob"), "the echo")
            await type_line(pilot, "/msg carol nobody")  # carol is not online: the error is shown here
            await until(pilot, lambda: on_screen(app, "Nobody called carol is online"), "the error")
            await type_line(pilot, "/close")
            await until(pilot, lambda: app.model.get("carol") is None and app.model.get("bob") is not None,
                        "carol's conversation closed")

        run(app_for(server), scenario)


# --------------------------------------------------------------------------------------------- the input


def test_tab_completes_commands_nicks_and_rooms_and_up_recalls(server: ServerThread) -> None:
    with people(server, "bob", "bella"):

        async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
            field = app.query_one(ChatInput)
            await online(app, pilot)
            await until(pilot, lambda: len(app.model.current.members) == 3, "everyone in the lobby")
            await pilot.press("/", "j", "o", "tab")
            assert field.value == "/join "
            await pilot.press("#", "l", "o", "tab")
            assert field.value == "/join #lobby "
            field.value = ""
            await pilot.press("b", "tab")
            first = field.value
            await pilot.press("tab")  # again: the other nick starting with b
            chosen = field.value
            assert {first, chosen} == {"bob: ", "bella: "}
            await pilot.press(*"hi", "enter")
            await until(pilot, lambda: on_screen(app, f"<alice> {chosen}hi"), "the line sent")
            await type_line(pilot, "/who")
            await until(pilot, lambda: on_screen(app, "#lobby: 3 members"), "the /who answer")
            await pilot.press("up")
            assert field.value == "/who"
            await pilot.press("up")
            assert field.value.endswith(": hi")
            await pilot.press("down", "down")
            assert field.value == ""

        run(app_for(server), scenario)


def test_scrolling_back_fetches_older_history_until_the_beginning_without_duplicates(make_server: Any) -> None:
    server = make_server(backlog=10)
    with people(server, "bob") as (bob,):
        bob.send(*(f"old {i}" for i in range(250)))
        bob.sync()

        async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
            await online(app, pilot)
            await until(pilot, lambda: on_screen(app, "old 249"), "the backlog")
            lobby = app.model.current
            backlog = [e for e in lobby.entries if e.is_message]
            assert len(backlog) == 10 and all(e.earlier for e in backlog)
            assert any(line.startswith("╎ ") and "<bob> old 240" in line for line in shown(app))  # marked
            assert on_screen(app, "── You joined #lobby")
            scrollback = current_scrollback(app)
            assert scrollback is not None
            scrollback.post_message(events.MouseScrollUp(scrollback, 5, 5, 0, -1, 0, False, False, False))
            await until(pilot, lambda: len([e for e in lobby.entries if e.is_message]) > 10, "a page by the wheel")
            for _ in range(200):  # read back: reaching the top (or PageUp there) asks for the page before
                if lobby.at_beginning and scrollback.scroll_y == 0:
                    break
                await pilot.press("pageup")
                await until(pilot, lambda: not lobby.fetching, "a page of history")
            texts = [e.text for e in lobby.entries if e.is_message]
            assert texts == [f"old {i}" for i in range(250)]  # all, in order, once
            assert scrollback.render_line(0).text.strip() == "── The beginning of #lobby ──"
            await pilot.press("pageup")  # at the beginning: nothing more is asked
            await pilot.pause()
            assert not lobby.fetching

        run(app_for(server), scenario, size=(100, 24))


def line(text: str) -> Rendered:
    return Rendered(Text(), Text(text))


def test_the_scrollback_keeps_the_reader_in_place_when_older_lines_arrive_above() -> None:
    class OneScrollback(App[None]):
        def compose(self) -> ComposeResult:
            yield Scrollback("#room", [line(f"line {i}") for i in range(50)])

    async def main() -> None:
        async with OneScrollback().run_test(size=(40, 10)) as pilot:
            scrollback = pilot.app.query_one(Scrollback)
            await pilot.pause()
            height = scrollback.scrollable_content_region.height
            assert scrollback.render_line(height - 1).text.strip() == "line 49"  # it starts at the bottom
            scrollback.insert(50, line("line 50"))
            await pilot.pause()
            assert scrollback.render_line(height - 1).text.strip() == "line 50"  # and follows new lines
            scrollback.scroll_to(y=20, animate=False, immediate=True)
            await pilot.pause()
            assert scrollback.render_line(0).text.strip() == "line 20"
            for i in range(30):  # a page of older lines arrives while the reader reads line 20
                scrollback.insert(i, line(f"older {i}"))
            scrollback.insert(len(scrollback.items), line("line 51"))  # and a new one at the bottom
            await pilot.pause()
            assert scrollback.render_line(0).text.strip() == "line 20"  # the reader did not move
            scrollback.scroll_to(y=0, animate=False, immediate=True)
            await pilot.pause()
            assert scrollback.render_line(0).text.strip() == "older 0"

    asyncio.run(main())


# ------------------------------------------------------------------------------------------- reconnecting


def test_after_a_server_restart_it_reconnects_takes_its_nick_and_rooms_back(make_server: Any,
                                                                              sqlite_db: str) -> None:
    first = make_server()

    async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
        await online(app, pilot)
        await type_line(pilot, "/join dev")
        await online(app, pilot, "#dev")
        await asyncio.to_thread(first.stop)
        await until(pilot, lambda: not app.core.online, "the disconnection")
        await until(pilot, lambda: on_screen(app, "Disconnected"), "the disconnection shown")
        await until(pilot, lambda: "disconnected" in status(app), "the status line")
        assert on_screen(app, "The server says goodbye")
        second = await asyncio.to_thread(make_server, db=sqlite_db, port=first.port)
        await until(pilot, lambda: app.core.online and app.model.get("#dev").joined
                    and app.model.get("#lobby").joined, "rooms rejoined")
        assert app.model.nick == "alice" and app.model.current.title == "#dev"
        assert on_screen(app, "Reconnected") and on_screen(app, "── Rejoined #dev")
        carol = await asyncio.to_thread(second.client, "carol", json_mode=True)
        await asyncio.to_thread(carol.send, "/who dev", "/who lobby")
        await asyncio.to_thread(carol.expect_event, "who", room="dev", members=["alice"])
        await asyncio.to_thread(carol.expect_event, "who", room="lobby", members=["alice", "carol"])
        carol.close()

    run(app_for(first), scenario)


def test_what_was_said_while_away_is_shown_once_and_a_stand_in_nick_is_traded_back(make_server: Any,
                                                                                 sqlite_db: str) -> None:
    first = make_server()
    patient = ReconnectPolicy(first_delay=60, max_delay=60, jitter=0.0, nick_retry=0.2, quit_wait=WAIT)

    async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
        await online(app, pilot)
        bob = await asyncio.to_thread(first.client, "bob", json_mode=True)
        await asyncio.to_thread(bob.send, "before 1", "before 2")
        await until(pilot, lambda: on_screen(app, "before 2"), "the messages before")
        bob.close()
        await asyncio.to_thread(first.stop)
        await until(pilot, lambda: app.core.retry_at is not None, "waiting to retry")
        second = await asyncio.to_thread(make_server, db=sqlite_db, port=first.port, backlog=3)
        ghost = await asyncio.to_thread(second.client, "alice")  # someone holds our nick meanwhile
        bob = await asyncio.to_thread(second.client, "bob", json_mode=True)
        await asyncio.to_thread(bob.send, *(f"missed {i}" for i in range(12)))
        await asyncio.to_thread(bob.sync)
        await type_line(pilot, "/reconnect")
        await until(pilot, lambda: app.core.online and app.model.get("#lobby").joined, "back online")
        assert app.model.nick == "alice_"  # a stand-in while the nick is taken
        await until(pilot, lambda: on_screen(app, "missed 0") and on_screen(app, "missed 11"), "the catch-up")
        ghost.close()
        await until(pilot, lambda: app.model.nick == "alice", "the nick taken back")
        await asyncio.to_thread(bob.expect_event, "nick", old="alice_", new="alice")
        lobby = app.model.get("#lobby")
        texts = [e.text for e in lobby.entries if e.is_message]
        assert texts == ["before 1", "before 2", *(f"missed {i}" for i in range(12))]
        assert not any(e.earlier for e in lobby.entries if e.text.startswith("missed"))
        lines = shown(app)
        rejoined = lines.index("── Rejoined #lobby (3 members) ──")
        missed = [i for i, line in enumerate(lines) if "<bob> missed" in line]
        assert len(missed) == 12 and max(missed) < rejoined  # said while away: above the line that says we are back
        bob.close()

    run(app_for(first, policy=patient), scenario)


# ------------------------------------------------------------------------------------- errors and leaving


def test_server_errors_are_shown_where_the_user_looks(server: ServerThread) -> None:
    async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
        await online(app, pilot)
        await type_line(pilot, "/join dev")
        await online(app, pilot, "#dev")
        await type_line(pilot, "/bogus")
        await until(pilot, lambda: on_screen(app, "!!! Unknown command /bogus"), "the error in #dev")
        await type_line(pilot, "/join not/a/room")
        await until(pilot, lambda: on_screen(app, "is not a valid room name"), "a refused name")
        await type_line(pilot, "/format text")
        await until(pilot, lambda: on_screen(app, "This client needs JSON"), "the client's own refusal")
        errors = [e for e in app.model.current.entries if e.kind is EntryKind.ERROR]
        assert len(errors) == 3 and app.model.get("#lobby").unread == 0

    run(app_for(server), scenario)


def test_garbage_from_the_server_and_a_vanished_socket_never_crash_it() -> None:
    script = b"".join([
        b"*** Welcome to a strange server\n",
        b'{"type":"format","format":"json"}\n',
        b'{"type":"welcome","nick":"alice","max_line":4096}\n',
        b'{"type":"joined","room":"lobby","members":["alice"],"topic":null,"time":"2026-01-01T00:00:00.000Z"}\n',
        b"{not json at all\n",
        b'{"type":"message","id":"x","room":"lobby"}\n',
        b'{"type":"joined","room":7}\n',
        b"[1,2,3]\n",
        b'{"type":"from_the_future","x":1}\n',
        b"\xff\xfe\x00\x01 binary\n",
        b"{" + b"x" * (2 << 20) + b"\n",  # longer than any line the client keeps
        b'{"type":"message","id":5,"time":"2026-01-01T00:00:01.000Z","room":"lobby","nick":"bob","text":"alive"}\n',
    ])
    fake = ScriptedServer(script, vanish=True, once=True)
    try:
        async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
            await until(pilot, lambda: app.model.get("#lobby") is not None
                        and any(e.text == "alive" for e in app.model.get("#lobby").entries), "the valid message",
                        timeout=20)
            await until(pilot, lambda: app.core.phase is not Phase.ONLINE, "the vanished socket noticed")
            assert app.core.garbage_lines == 4  # not JSON, bad message, bad joined, the over-long line
            server_window = [e.text for e in app.model.server.entries]
            assert any("Ignored a line from the server" in t for t in server_window)
            await until(pilot, lambda: fake.connections >= 2, "a retry")
            assert app.is_running

        run(app_for(fake), scenario)
    finally:
        fake.close()


@pytest.mark.parametrize("how", ["/quit see you", "ctrl+c", "ctrl+d"])
def test_leaving_tells_the_server_and_ends_the_app(server: ServerThread, how: str) -> None:
    with people(server, "bob") as (bob,):

        async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
            await online(app, pilot)
            if how.startswith("/"):
                await type_line(pilot, how)
            else:
                await pilot.press(how)
            gone = await asyncio.to_thread(bob.expect_event, "quit", nick="alice")
            assert gone["reason"] == ("see you" if how.startswith("/") else "leaving")
            await until(pilot, lambda: app.return_value == 0, "the app to end")

        app = app_for(server)
        run(app, scenario)
        assert app.return_value == 0


def test_a_server_that_stops_answering_is_noticed_and_left() -> None:
    hung = ScriptedServer(b"".join([
        b'{"type":"welcome","nick":"alice","max_line":4096}\n',
        b'{"type":"joined","room":"lobby","members":["alice"],"topic":null,"time":"2026-01-01T00:00:00.000Z"}\n',
    ]), silent=True)
    policy = ReconnectPolicy(first_delay=0.05, max_delay=0.2, jitter=0.0, heartbeat=0.3, heartbeat_timeout=0.3)
    try:
        async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
            await online(app, pilot)
            await until(pilot, lambda: on_screen(app, "Disconnected: the server stopped answering"),
                        "the silence noticed")
            assert "/ping chat-client:alive" in hung.received
            await until(pilot, lambda: hung.connections >= 2, "a new connection")

        run(app_for(hung, policy=policy), scenario)
    finally:
        hung.close()


# ------------------------------------------------------------------------------------- long input, pastes


def their_texts(client: LineClient, kind: str = "message") -> list[str]:
    """The texts of the `kind` events a LineClient has seen so far, in order."""
    return [e["text"] for e in (json.loads(line) for line in client.seen if line.startswith("{"))
            if e.get("type") == kind]


def test_a_long_line_is_split_under_the_servers_limit_every_part_arriving_in_order(make_server: Any) -> None:
    """A 5,000-character paste was refused as longer than 4096 bytes, the input emptied, and a later disconnect
    warned that a message "may not have been delivered" that was (a stale entry left by the refused line)."""
    server = make_server(max_line=256)
    text = " ".join(f"word{i}-é😀" for i in range(500))  # multi-byte characters at every boundary
    with people(server, "bob") as (bob,):

        async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
            await online(app, pilot)
            assert app.core.max_line == 256  # said by the server's welcome
            field = app.query_one(ChatInput)
            field.post_message(events.Paste(text))  # one long line, pasted
            await until(pilot, lambda: field.value == text, "the paste in the input")
            await pilot.press("enter")
            await until(pilot, lambda: field.value == "", "the input emptied once sent")
            await until(pilot, lambda: on_screen(app, "word499-é😀"), "the echo of the last part")
            await asyncio.to_thread(bob.sync)  # everything stored was delivered to bob before this answer
            parts = their_texts(bob)
            assert "".join(parts) == text  # every part, in order, none cut inside a character
            assert len(parts) > 20 and all(len(f"/msg #lobby {p}".encode()) <= 256 for p in parts)
            assert not any(e.kind is EntryKind.ERROR for e in app.model.current.entries)
            await asyncio.to_thread(server.stop)
            await until(pilot, lambda: on_screen(app, "Disconnected"), "the disconnection")
            assert not on_screen(app, "may not have been delivered")

        run(app_for(server), scenario)


def test_a_multi_line_paste_asks_first_then_every_line_arrives_in_order(make_server: Any) -> None:
    server = make_server(rate=200, burst=20, flood_limit=25)  # 150 lines at once would be a flood
    lines = [f"pasted line {i}" for i in range(150)]
    with people(server, "bob") as (bob,):

        async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
            await online(app, pilot)
            field = app.query_one(ChatInput)
            field.value = "draft"
            field.cursor_position = len("draft")
            field.post_message(events.Paste("\n".join(lines) + "\n"))
            await until(pilot, lambda: on_screen(app, "Paste 150 lines into #lobby"), "the question")
            await asyncio.to_thread(bob.sync, "asked")
            assert their_texts(bob) == []  # nothing sent before the answer
            await pilot.press("enter")
            for line in ["draftpasted line 0", *lines[1:]]:  # what was typed before the paste leads it
                await asyncio.to_thread(bob.expect_event, "message", text=line)
            assert their_texts(bob) == ["draftpasted line 0", *lines[1:]]
            assert app.core.online and field.value == ""
            field.value = "kept"
            field.post_message(events.Paste("one\ntwo\n/three"))
            await until(pilot, lambda: on_screen(app, "Paste 3 lines"), "the second question")
            await pilot.press("escape")
            await until(pilot, lambda: field.value == "kept", "the draft back")
            await asyncio.to_thread(bob.sync, "after")
            assert "two" not in their_texts(bob)

        run(app_for(server), scenario)


# ------------------------------------------------------------------------------------------------ layout


def pane_shown(app: ChatApp, pane: str) -> bool:
    return app.query_one(f"#{pane}").styles.display != "none"


def test_narrow_terminals_fold_the_side_panes_and_wrapped_lines_hang_under_the_text(server: ServerThread) -> None:
    """At 60x20 the panes kept about 35 columns and left 19 for the messages."""
    with people(server, "bob") as (bob,):

        async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
            await online(app, pilot)
            scrollback = current_scrollback(app)
            assert scrollback is not None
            assert not pane_shown(app, "conversations-pane") and not pane_shown(app, "members-pane")
            await until(pilot, lambda: scrollback.scrollable_content_region.width >= 55, "the messages' width")
            long = "a long message " * 12
            await asyncio.to_thread(bob.send, long.strip(), "/msg alice psst")
            await until(pilot, lambda: on_screen(app, long.strip()), "the long message")
            lines = scrollback.screen_lines
            first = next(i for i, line in enumerate(lines) if "<bob> a long message" in line)
            indent = lines[first].index("a long message")
            assert lines[first + 1].startswith(" " * indent) and lines[first + 1][indent] != " "
            await until(pilot, lambda: "3:bob(1!)" in status(app), "the unread private message in the status")
            await pilot.resize_terminal(80, 24)
            await until(pilot, lambda: pane_shown(app, "conversations-pane"), "the list back at 80 columns")
            assert not pane_shown(app, "members-pane")
            await pilot.resize_terminal(110, 30)
            await until(pilot, lambda: pane_shown(app, "members-pane"), "the members back at 110 columns")

        run(app_for(server), scenario, size=(60, 20))


def test_scrolled_up_a_bar_says_more_below_and_end_or_ctrl_end_jumps_down(make_server: Any) -> None:
    server = make_server(backlog=100)
    with people(server, "bob") as (bob,):
        bob.send(*(f"old {i}" for i in range(100)))
        bob.sync()

        async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
            await online(app, pilot)
            await until(pilot, lambda: on_screen(app, "old 99"), "the backlog")
            scrollback = current_scrollback(app)
            assert scrollback is not None and scrollback.following
            bar = app.query_one("#more-below", Static)
            assert not bar.display
            await until(pilot, lambda: scrollback.max_scroll_y > 10, "the backlog laid out, taller than the view")
            await pilot.press("pageup")
            await until(pilot, lambda: not scrollback.following and bar.display, "the bar")
            await asyncio.to_thread(bob.send, "news")
            await until(pilot, lambda: "1 new below" in str(bar.render()), "the count of new lines")
            await pilot.press("end")  # the input line is empty: End jumps down
            await until(pilot, lambda: scrollback.following and not bar.display, "back at the bottom")
            app.query_one(ChatInput).value = "typing"
            app.query_one(ChatInput).cursor_position = 0
            await pilot.press("pageup", "end")  # in the middle of a line, End goes to its end first
            assert app.query_one(ChatInput).cursor_position == len("typing") and not scrollback.following
            await pilot.press("ctrl+end")
            await until(pilot, lambda: scrollback.following, "ctrl+end at the bottom")

        run(app_for(server), scenario, size=(100, 24))


# ------------------------------------------------------------------------------- attention: marks, alerts


def test_a_read_marker_shows_what_came_since_you_looked(server: ServerThread) -> None:
    with people(server, "bob") as (bob,):

        async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
            await online(app, pilot)
            await asyncio.to_thread(bob.send, "seen before")
            await until(pilot, lambda: on_screen(app, "seen before"), "the first message")
            await type_line(pilot, "/join dev")
            await online(app, pilot, "#dev")
            await asyncio.to_thread(bob.send, "said while you were in dev")
            await until(pilot, lambda: app.model.get("#lobby").unread == 1, "one unread")
            await pilot.press("ctrl+p")
            await until(pilot, lambda: app.model.current.title == "#lobby", "the lobby shown")
            lines = current_scrollback(app).screen_lines  # type: ignore[union-attr]
            marker = next(i for i, line in enumerate(lines) if "new since you looked" in line)
            assert "seen before" in lines[marker - 1] and "said while you were in dev" in lines[marker + 1]

        run(app_for(server), scenario)


def test_mentions_and_private_messages_ring_unless_you_are_looking(server: ServerThread) -> None:
    with people(server, "bob") as (bob,):

        async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
            await online(app, pilot)
            await asyncio.to_thread(bob.send, "/msg alice psst")
            await until(pilot, lambda: app.model.get("bob") is not None and app.rung, "the private message")
            assert app.model.get("bob").mentioned  # a private message counts as a mention: the red count
            assert list(app.rung) == ["\a"]  # headless: no desktop notification chosen, the bell alone
            await asyncio.to_thread(bob.send, "alice: here?", "no mention")
            await until(pilot, lambda: on_screen(app, "no mention"), "both lines")
            assert len(app.rung) == 2  # the terminal never said it had focus: ring even for the room shown
            app.post_message(events.AppFocus())
            await until(pilot, lambda: app.focused_terminal is True, "the focus reported")
            await asyncio.to_thread(bob.send, "alice: and now?", "/msg alice and privately?")
            await until(pilot, lambda: len(app.rung) == 3, "the private message rung")
            await asyncio.to_thread(bob.sync)
            await pilot.pause(0.05)
            assert len(app.rung) == 3  # the mention in the room shown, with the terminal focused, did not

        run(app_for(server), scenario)


# ----------------------------------------------------------------------------------- search, lag, ignore


def test_lastlog_and_ctrl_r_find_what_was_said(server: ServerThread) -> None:
    with people(server, "bob") as (bob,):

        async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
            await online(app, pilot)
            await asyncio.to_thread(bob.send, "apple pie", "banana", "Apple juice")
            await until(pilot, lambda: on_screen(app, "Apple juice"), "the messages")
            await type_line(pilot, "/lastlog apple")
            await until(pilot, lambda: on_screen(app, "2 messages here contain 'apple'"), "the lastlog")
            assert on_screen(app, "<bob> apple pie") and on_screen(app, "<bob> Apple juice")
            field = app.query_one(ChatInput)
            field.value = "draft"
            await pilot.press("ctrl+r", *"apple")
            scrollback = current_scrollback(app)
            assert scrollback is not None
            entries = app.model.current.entries
            await until(pilot, lambda: scrollback.highlighted is not None
                        and entries[scrollback.highlighted].text == "Apple juice", "the newest match")
            await pilot.press("ctrl+r")
            await until(pilot, lambda: entries[scrollback.highlighted or 0].text == "apple pie", "an older one")
            await pilot.press("escape")
            await until(pilot, lambda: scrollback.highlighted is None and field.value == "draft", "search left")
            assert scrollback.following

        run(app_for(server), scenario)


def test_the_lag_is_in_the_status_line(server: ServerThread) -> None:
    async def scenario(app: ChatApp, pilot: Pilot[Any]) -> None:
        await online(app, pilot)
        await until(pilot, lambda: " ms" in status(app) and "lag " in status(app), "the lag")
        assert app.core.outgoing.lag is not None and app.core.outgoing.lag < WAIT

    run(app_for(server), scenario)


def test_ignore_hides_a_nick_and_is_saved_with_the_server(server: ServerThread, tmp_path: Any) -> None:
    path = tmp_path / "chat" / "client.toml"
    with people(server, "bob", "carol") as (bob, carol):

        async def first(app: ChatApp, pilot: Pilot[Any]) -> None:
            await online(app, pilot)
            await asyncio.to_thread(bob.send, "before the ignore")
            await until(pilot, lambda: on_screen(app, "before the ignore"), "bob's line")
            await type_line(pilot, "/ignore bob")
            await until(pilot, lambda: on_screen(app, "Ignoring bob"), "the answer")
            assert not on_screen(app, "before the ignore")  # hidden, already said or not
            await asyncio.to_thread(bob.send, "spam", "/msg alice more spam")
            await asyncio.to_thread(carol.send, "carol speaks")
            await until(pilot, lambda: on_screen(app, "carol speaks"), "carol's line")
            assert not on_screen(app, "spam") and app.model.get("bob") is not None
            assert app.model.get("bob").unread == 0 and not app.rung

        run(app_for(server, config=load_config(path)), first)
        saved = tomllib.loads(path.read_text())
        assert saved["ignore"]["nicks"] == ["bob"]
        assert saved["server"] == {"host": server.host, "port": server.port, "nick": "alice"}

        async def second(app: ChatApp, pilot: Pilot[Any]) -> None:
            await online(app, pilot)
            await asyncio.to_thread(bob.send, "still ignored")
            await asyncio.to_thread(carol.send, "carol again")
            await until(pilot, lambda: on_screen(app, "carol again"), "carol's line")
            assert not on_screen(app, "still ignored")
            await type_line(pilot, "/unignore bob")
            await until(pilot, lambda: on_screen(app, "still ignored"), "bob shown again")

        run(app_for(server, config=load_config(path)), second)
        assert tomllib.loads(path.read_text())["ignore"]["nicks"] == []
