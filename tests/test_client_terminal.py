"""`chat client` in a real terminal (a pseudo-terminal, or tmux): it goes full screen, chats with someone on a
plain socket (as `nc` would), keys do what they say, nicks get colours that differ, a mention rings the bell,
and Ctrl-C leaves, tells the server and gives the terminal back. What is checked is the bytes that reach the
terminal."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from harness import WAIT, LineClient, ServerThread, TerminalClient, TmuxSession, tmux_available, wait_for

ALT_SCREEN_OFF = b"\x1b[?1049l"  # leaving the alternate screen: the terminal is given back
ST = b"\x1b\\"  # the string terminator that ends an OSC sequence


def terminal(server: ServerThread, *args: str, env: dict[str, str] | None = None,
             tmp_path: Path | None = None) -> TerminalClient:
    """The client in a pseudo-terminal, with a settings folder of its own (never the user's)."""
    environment = {"XDG_CONFIG_HOME": str(tmp_path or "/nonexistent"), **(env or {})}
    return TerminalClient(server.host, server.port, *args, env=environment)


def test_in_a_terminal_it_is_full_screen_chats_with_nc_and_ctrl_c_restores_the_terminal(
        server: ServerThread) -> None:
    bob = server.client("bob", json_mode=True)  # bob is on a raw socket, as on nc
    client = terminal(server, "--nick", "alice")
    try:
        bob.expect_event("join", nick="alice")
        client.wait_for_output(b"Message #lobby")  # the input line's placeholder: the screen is drawn
        bob.send("hello from nc")
        client.wait_for_output(b"hello from nc")
        client.type(b"hello from the terminal\r")
        assert bob.expect_event("message", text="hello from the terminal")["nick"] == "alice"
        client.type(b"\x03")  # Ctrl-C
        assert client.proc.wait(WAIT) == 0
        assert bob.expect_event("quit", nick="alice")["reason"] == "leaving"
        wait_for(lambda: ALT_SCREEN_OFF in client.output, what="the terminal given back")
        assert b"Traceback" not in client.output
    finally:
        client.close()
        bob.close()


def test_without_textual_it_says_so_names_no_foreign_package_and_works_line_by_line(
        server: ServerThread, tmp_path: Path) -> None:
    blocker = tmp_path / "no-textual" / "textual"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('textual is not installed', name='textual')\n")
    env: dict[str, Any] = {"PYTHONPATH": os.pathsep.join(filter(None, [str(blocker.parent),
                                                                      os.environ.get("PYTHONPATH")]))}
    bob = server.client("bob", json_mode=True)
    client = terminal(server, "--nick", "alice", env=env)
    try:
        client.wait_for_output(b"full-screen mode needs Textual")
        client.wait_for_output(b"Welcome, alice")
        assert b"pip install ." in client.output
        assert b"chat-server[" not in client.output  # a package of that name on PyPI is someone else's
        client.type(b"hi, line by line\n")
        bob.expect_event("message", text="hi, line by line")
        client.type(b"\x04")  # Ctrl-D: the end of input
        assert client.proc.wait(WAIT) == 0
        bob.expect_event("quit", nick="alice")
        assert b"Traceback" not in client.output
    finally:
        client.close()
        bob.close()


def test_alt_digit_switches_conversations_and_never_types_text(server: ServerThread) -> None:
    """xterm, tmux and GNOME Terminal send ESC+digit for Alt-digit; Textual used to read it as ¡™£… and the
    client then sent it: `£/who` to bob."""
    bob = server.client("bob", json_mode=True)
    client = terminal(server, "--nick", "alice")
    try:
        start = client.wait_for_output(b"Message #lobby")
        bob.send("/msg alice psst")  # the third conversation: server window, #lobby, bob
        start = client.wait_for_output(b" (1)", start=start)  # its unread count in the list
        client.type(b"\x1b3")  # Alt-3
        start = client.wait_for_output(b"private conversation", start=start)
        client.type(b"just us\r")
        assert bob.expect_event("private", text="just us")["to"] == "bob"
        client.type(b"\x1b2")  # Alt-2: back to the room
        client.wait_for_output(b"Message #lobby", start=start)
        client.type(b"/me waves\r")
        assert bob.expect_event("action", text="waves")["room"] == "lobby"
        assert not any(ch in line for line in bob.seen for ch in "¡™£¢∞§¶•ª")
    finally:
        client.close()
        bob.close()


def _nick_colours(output: bytes, nicks: list[str]) -> dict[str, str]:
    """The foreground colour each nick was drawn in (the SGR right before `<nick>`'s name)."""
    found: dict[str, str] = {}
    for params, nick in re.findall(rb"\x1b\[([0-9;]+)m(" + b"|".join(n.encode() for n in nicks) + rb")\x1b",
                                   output):
        colour = re.search(rb"38;(2;\d+;\d+;\d+|5;\d+)", params)
        if colour is not None:
            found.setdefault(nick.decode(), colour.group(1).decode())
    return found


@pytest.mark.parametrize("colours", ["truecolor", "256"])
def test_common_nicks_are_drawn_in_different_colours(server: ServerThread, colours: str) -> None:
    """They were all 38;2;244;0;95 (the ANSI names of the palette, mapped together by Textual's theme)."""
    nicks = ["bob", "carol", "dave", "erin", "frank"]
    people = [server.client(nick, json_mode=True) for nick in nicks]
    env = {"COLORTERM": "truecolor"} if colours == "truecolor" else {"TEXTUAL_COLOR_SYSTEM": "256"}
    client = terminal(server, "--nick", "alice", env=env)
    try:
        client.wait_for_output(b"Message #lobby")
        for person, nick in zip(people, nicks, strict=True):
            person.send(f"hello from {nick}")
            client.wait_for_output(f"hello from {nick}".encode())
        wait_for(lambda: len(_nick_colours(bytes(client.output), nicks)) == len(nicks), what="every nick drawn")
        drawn = _nick_colours(bytes(client.output), nicks)
        assert all(c.startswith("2;" if colours == "truecolor" else "5;") for c in drawn.values()), drawn
        assert len(set(drawn.values())) == len(nicks), drawn
    finally:
        client.close()
        for person in people:
            person.close()


def _mention_and_private(server: ServerThread, client: TerminalClient) -> tuple[LineClient, int]:
    bob = server.client("bob", json_mode=True)
    start = client.wait_for_output(b"Message #lobby")
    bob.send("no mention here")
    start = client.wait_for_output(b"no mention here", start=start)
    bob.send("alice: are you there?", "/msg alice psst")
    start = client.wait_for_output(b"psst", start=start)
    return bob, start


def test_a_mention_and_a_private_message_ring_the_bell_and_notify_with_osc_9(server: ServerThread) -> None:
    client = terminal(server, "--nick", "alice", env={"TERM_PROGRAM": "WezTerm"})  # a terminal that shows OSC 9
    try:
        bob, _ = _mention_and_private(server, client)
        mention = b"\x1b]9;chat: bob in #lobby: alice: are you there?" + ST + b"\a"
        private = b"\x1b]9;chat: bob (private): psst" + ST + b"\a"
        client.wait_for_output(mention)
        client.wait_for_output(private)
        assert client.output.count(b"\x1b]9;") == 2  # "no mention here" rang nothing
        bob.close()
    finally:
        client.close()


def test_the_settings_choose_osc_777_and_silence_the_bell(server: ServerThread, tmp_path: Path) -> None:
    (tmp_path / "chat").mkdir()
    (tmp_path / "chat" / "client.toml").write_text('[notify]\nbell = false\ndesktop = "osc777"\n')
    client = terminal(server, "--nick", "alice", tmp_path=tmp_path)
    try:
        bob, _ = _mention_and_private(server, client)
        client.wait_for_output(b"\x1b]777;notify;chat: bob in #lobby;alice: are you there?" + ST)
        end = client.wait_for_output(b"\x1b]777;notify;chat: bob (private);psst" + ST)
        assert client.output[end:end + 1] != b"\a"  # bell = false
        bob.close()
    finally:
        client.close()


@pytest.mark.skipif(not tmux_available(), reason="tmux is not installed")
def test_in_tmux_a_mention_sets_the_windows_bell_flag(server: ServerThread, tmp_path: Path) -> None:
    session = TmuxSession(server.host, server.port, "--nick", "alice", env={"XDG_CONFIG_HOME": str(tmp_path)})
    bob = server.client("bob", json_mode=True)
    try:
        wait_for(lambda: "Message #lobby" in session.screen(0), what="the client drawn in tmux")
        session.tmux("new-window", "-t", "chat:1")  # the user looks at another window
        assert session.window_flag(0, "window_bell_flag") == "0"
        bob.send("alice: lunch?")
        wait_for(lambda: session.window_flag(0, "window_bell_flag") == "1", what="tmux's bell flag on window 0")
    finally:
        bob.close()
        session.close()
