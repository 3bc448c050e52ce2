"""Text-mode spoofing, tried as an attacker would on a real server: user text must never start a line, end one,
hide, or pass for the server's own `***` lines, whatever field carries it (message, action, topic, part and quit
reasons, ping token), and whatever an older database holds. The rules themselves are tabled in test_text.py."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable

import pytest

from chat.protocol.text import sanitize
from harness import LineClient, ServerThread, chat_command

# Everything some terminal, client or str.splitlines() takes for the end of a line (\n itself ends the line sent)
BREAKS = ["\u2029", "\u2028", "\x85", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]
FAKE = "*** carol quit (x"


def _one_line_each(lines: list[str]) -> None:
    for line in lines:
        assert line.splitlines() == [line], f"user text broke a line: {line!r}"
        assert not line.startswith("*** carol"), f"a forged server line: {line!r}"


@pytest.mark.parametrize("brk", BREAKS, ids=[f"U+{ord(b):04X}" for b in BREAKS])
def test_no_user_text_can_start_a_line_or_forge_a_server_line(make_server: Callable[..., ServerThread],
                                                               brk: str) -> None:
    server = make_server()
    alice = server.client("alice")
    bob = server.client("bob")
    alice.expect("bob joined")
    bob.send(f"hi{brk}{FAKE}", f"/me waves{brk}{FAKE}", f"/topic #lobby news{brk}{FAKE}",
             f"/msg alice psst{brk}{FAKE}", "/join side", f"/leave lobby later){brk}{FAKE}", "/join lobby")
    alice.expect("bob joined")
    dave = server.client("dave")  # a newcomer sees the topic in its `joined` line
    alice.send("/rooms", "/topic")
    alice.expect("set by bob")
    bob.send(f"/quit bye){brk}{FAKE}")  # the example
    quit_line = alice.expect("bob quit")
    assert quit_line == f"*** bob quit (bye){sanitize(brk)}{FAKE})"  # one line: the reason inside it
    alice.sync()
    _one_line_each(alice.seen)
    _one_line_each(dave.seen)
    assert not any(brk in line for line in alice.seen + dave.seen)


def test_a_ping_token_cannot_forge_a_line_either(server: ServerThread) -> None:
    alice = server.client("alice")
    alice.send(f"/ping t\u2028{FAKE}")
    assert alice.expect("pong") == f"*** pong t␤{FAKE}"


def test_invisible_and_zalgo_text_is_shown_for_what_it_is(make_server: Callable[..., ServerThread]) -> None:
    server = make_server()
    alice, bob = server.client("alice"), server.client("bob")
    zalgo = "h" + "\u0336\u0334\u0335" * 30 + "i"
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    bob.send("adm\u200bin", "\u3164", "\u202etxt.exe", zalgo, f"I \u2764\ufe0f {family}")
    assert alice.expect("bob: adm") == "[#lobby] bob: adm\ufffdin"
    assert alice.expect("bob: ") == "[#lobby] bob: \ufffd"  # the "empty" message is not empty
    assert alice.expect("bob: ") == "[#lobby] bob: \ufffdtxt.exe"
    assert alice.expect("bob: ") == "[#lobby] bob: h\u0336\u0334\u0335\u0336i"  # four marks at most
    assert alice.expect("bob: ") == f"[#lobby] bob: I \u2764\ufe0f {family}"  # emoji sequences are kept


def _chat(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*chat_command(), *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def test_what_an_old_database_holds_is_shown_and_exported_under_the_same_rule(
    make_server: Callable[..., ServerThread], sqlite_db: str,
) -> None:
    first = make_server()
    first.client("bob").send("placeholder one", "placeholder two")
    first.client("alice").expect("placeholder two")
    first.stop()
    # written raw by an older chat or another program: separators, an escape sequence, a zero-width space
    raw = f"old\u2028{FAKE}\x1b[2Jzero\u200bwidth"
    with sqlite3.connect(sqlite_db) as db:
        db.execute("UPDATE messages SET text = ? WHERE text = 'placeholder one'", (raw,))
        db.execute("UPDATE rooms SET topic = ? WHERE name = 'lobby'", (f"topic\u2029{FAKE}",))
    shown = f"old␤{FAKE}␛[2Jzero\ufffdwidth"

    server = make_server()  # the backlog, /history and /topic, live
    carol = server.client("carol")
    assert f"Topic: topic␤{FAKE}" in carol.seen[-1]
    assert carol.expect("bob: old") == f"[#lobby] [{carol.seen[-1][10:29]} history] bob: {shown}"
    carol.send("/history lobby 5 after 0", "/topic", "/rooms")
    carol.expect("End of history")
    assert carol.expect("*** Topic:") == f"[#lobby] *** Topic: topic␤{FAKE}"
    carol.sync()
    _one_line_each(carol.seen)

    out = _chat("history", "--db", sqlite_db, "--room", "lobby", "--format", "json").stdout
    rows = [json.loads(line) for line in out.splitlines()]  # one JSON object per line, even read this way
    assert [r["text"] for r in rows] == [shown, "placeholder two"]
    text = _chat("history", "--db", sqlite_db, "--room", "lobby").stdout
    assert "\x1b" not in text and len(text.splitlines()) == 2
    rooms = _chat("rooms", "--db", sqlite_db, "--format", "json").stdout.splitlines()
    assert [json.loads(line)["topic"] for line in rooms] == [f"topic␤{FAKE}"]
    server.stop()
    with sqlite3.connect(sqlite_db) as db:  # shown safely, never rewritten
        assert db.execute("SELECT count(*) FROM messages WHERE text = ?", (raw,)).fetchone() == (1,)


def test_a_client_in_text_mode_reads_only_whole_server_lines(server: ServerThread) -> None:
    # the same over a raw socket, as nc shows it: every byte after a newline starts a line the server wrote
    alice = LineClient(server.host, server.port)
    alice.register("alice")
    bob = server.client("bob")
    bob.send("".join(f"x{b}{FAKE}" for b in BREAKS))
    bob.sync()
    line = alice.expect("bob: x")
    assert line.startswith("[#lobby] bob: x") and line.splitlines() == [line]
