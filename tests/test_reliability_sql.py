"""No SQL is built from strings, and whatever people type comes back exactly as the server accepted it: live, from
/history, after a restart, on SQLite and PostgreSQL."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.protocol.commands import parse_line
from chat.protocol.events import ChatMessage, MessageKind
from chat.protocol.text import sanitize
from chat.storage.database import make_engine, upgrade
from chat.storage.repository import ChatStore, StoredRoom, TopicChange, WriteBatch
from harness import LineClient, ServerThread, stored_messages

ROOT = Path(__file__).resolve().parents[1]
SQL_CALLS = {"execute", "executemany", "executescript", "exec_driver_sql", "text"}
# The only SQL strings with anything interpolated, and why each is safe:
ALLOWED = {
    ("chat/storage/database.py", "f'BEGIN {mode}'"): "mode is an execution option set in code (DEFERRED/IMMEDIATE)",
}

TEXTS = [
    "it's \"quoted\" and `ticked`", "'; DROP TABLE messages; --", "\" OR 1=1 --", "back\\slash \\n \\x00 \\'",
    "percent %s %(name)s %% and _under_", ":name ? $1 @p0 {0}", "nul\x00byte", "esc\x1b[31mred\x07", "tab\there",
    "emoji 🎉 👩‍💻 🏳️‍🌈 family 👨‍👩‍👧‍👦", "ünïcödé çåfé", "右から左 עברית \u202eevil", "zero\u200bwidth", "a" * 4000,
    "combining é vs é", "max plane \U0010fffd", "  leading and trailing spaces  ",
]


def test_no_sql_is_built_from_strings() -> None:
    """Every SQL call gets a literal, a SQLAlchemy construct, or an f-string of int() values; bound parameters
    carry everything else. (A static check over the server, storage, CLI and migrations code.)"""
    found = []
    for path in [*ROOT.glob("chat/**/*.py"), *ROOT.glob("cli/*.py"), *ROOT.glob("migrations/**/*.py")]:
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name not in SQL_CALLS:
                continue
            sql = node.args[0]
            built = isinstance(sql, ast.BinOp) or (
                isinstance(sql, ast.Call) and isinstance(sql.func, ast.Attribute) and sql.func.attr == "format")
            if isinstance(sql, ast.JoinedStr):
                built = not all(isinstance(v, ast.FormattedValue) and isinstance(v.value, ast.Call)
                                and getattr(v.value.func, "id", "") == "int"
                                for v in sql.values if not isinstance(v, ast.Constant))
            if built and (rel, ast.unparse(sql)) not in ALLOWED:
                found.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "SQL built from strings:\n" + "\n".join(found)


def test_odd_text_names_and_topics_round_trip_exactly(make_server: Callable[..., ServerThread], any_db: str) -> None:
    server = make_server(db=any_db, backlog=len(TEXTS) + 5)
    nick, room = "O_Brien-", "Drop.Table-1_"
    alice = LineClient(server.host, server.port, json_mode=True)
    alice.register(nick)
    bob = LineClient(server.host, server.port, json_mode=True)
    bob.register("b")
    for bad in ("/nick O'Brien", "/nick Rob\x00ert", '/join "; DROP', "/join a'b"):  # refused before any SQL
        alice.send(bad)
        assert alice.expect_event("error")["code"] in ("invalid_nick", "invalid_room", "bad_argument")
    alice.send(f"/join {room}", f"/topic #{room} {TEXTS[0]}")
    alice.expect_event("topic", change=True)
    live = []
    for text in TEXTS:
        line = f"/msg #{room} {text}"
        alice.send(line)
        event = alice.expect_event("message", room=room)
        assert event["text"] == accepted(line), "what was accepted, made safe (sanitize), and nothing else"
        live.append((event["id"], event["nick"], event["text"]))
    alice.send(f"/msg b {TEXTS[1]} 🎉")
    assert bob.expect_event("private")["text"] == accepted(f"/msg b {TEXTS[1]} 🎉")

    alice.send(f"/history {room} 100 after 0")
    page = [(e["id"], e["nick"], e["text"]) for e in alice.events_until("history_end", room=room)
            if e.get("history")]
    assert page == live
    assert {i: (n, t) for i, (n, r, t) in stored_messages(any_db).items() if r == room} == {
        i: (n, t) for i, n, t in live}

    server.stop()  # and after a restart, from the database alone
    again = make_server(db=any_db, backlog=len(TEXTS) + 5)
    carol = LineClient(again.host, again.port, json_mode=True)
    carol.register("carol")
    carol.send(f"/join {room}")
    events = carol.events_until("history_end", room=room)
    assert next(e for e in events if e["type"] == "joined")["topic"] == accepted(f"/topic #{room} {TEXTS[0]}")
    assert [(e["id"], e["nick"], e["text"]) for e in events if e.get("history")] == live


def accepted(line: str) -> str:
    """The text the server accepts from a line: its parser's, sanitized (controls made visible)."""
    command = parse_line(line)
    return command.text  # type: ignore[union-attr]


NICKS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,19}", fullmatch=True)
ROOMS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}", fullmatch=True)


def test_any_text_round_trips_through_the_store(any_db: str) -> None:
    """Any text the server could accept (any Unicode, after sanitize), under any valid nick and room name."""
    store = ChatStore(make_engine(any_db))
    upgrade(store.engine)
    ids = iter(range(1, 10**6))

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=300), NICKS, ROOMS)
    def check(text: str, nick: str, room_name: str) -> None:
        text = sanitize(text)
        room_id = next(ids)
        message = ChatMessage(next(ids), MessageKind.MESSAGE, nick, text, 1_700_000_000.5, room=room_name)
        name = f"{room_name[:24]}.{room_id}"  # unique, and within the 32 characters of a room name
        store.write(WriteBatch(rooms=[StoredRoom(room_id, name, None, None, None, 0.0)],
                               messages=[(message, room_id)], topics=[TopicChange(room_id, text, nick, 1.0)]))
        (back,), _ = store.history(room_id, room_name, 5)
        assert (back.id, back.nick, back.text, back.time) == (message.id, nick, text, message.time)
        assert stored_room_topic(store, room_id) == text

    try:
        check()
    finally:
        store.engine.dispose()


def stored_room_topic(store: ChatStore, room_id: int) -> str | None:
    from sqlalchemy import select

    from chat.storage.repository import ROOMS as ROOMS_TABLE

    with store.engine.connect() as conn:
        return conn.execute(select(ROOMS_TABLE.c.topic).where(ROOMS_TABLE.c.id == room_id)).scalar()


@pytest.mark.parametrize("text", TEXTS)
def test_text_mode_shows_exactly_the_stored_text(server: ServerThread, text: str) -> None:
    alice, bob = server.client("alice"), server.client("bob")
    alice.send(text)
    shown = bob.expect(lambda line: line.startswith("[#lobby] alice: "))
    assert shown == f"[#lobby] alice: {sanitize(text)}"
    assert not any(ord(ch) < 0x20 for ch in shown)  # safe for a terminal: controls were made visible
