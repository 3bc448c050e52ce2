"""The client's pure parts, without sockets or UI: decoding, the model, the core's translation of input and
events, completion and input history. (End-to-end behaviour is in test_client_tui.py and friends.)"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from chat.client import events as ev
from chat.client.core import ClientCore, Outcome, alternate_nick
from chat.client.inputline import Completer, InputHistory
from chat.client.model import ClientModel, Entry, EntryKind
from chat.client.outgoing import SYNC_TOKEN, WINDOW
from chat.client.split import split_text
from chat.protocol import events as protocol
from chat.protocol.names import is_valid_nick

T = "2026-01-01T00:00:00.000Z"


def event(**fields: Any) -> ev.Incoming | None:
    return ev.Decoder().decode(json.dumps(fields).encode())


def message(id_: int, text: str, nick: str = "bob", room: str = "lobby", **more: Any) -> ev.Incoming | None:
    return event(type="message", id=id_, time=T, room=room, nick=nick, text=text, **more)


def sent(core: ClientCore) -> list[str]:
    """What the core sends now, less the sync pings that follow every batch (outgoing.py)."""
    return [line for line in core.take_outbox() if not line.startswith(f"/ping {SYNC_TOKEN}")]


def online_core(nick: str = "alice") -> ClientCore:
    core = ClientCore(nick, None, "test")
    core.connection_opened()
    for item in (event(type="welcome", nick=nick, max_line=4096),
                 event(type="joined", room="lobby", members=[nick, "bob"], topic=None, time=T)):
        core.receive(item)
    answer(core, core.take_outbox())
    return core


def answer(core: ClientCore, lines: list[str]) -> None:
    """Answer the sync pings among `lines`, as the server does once it has handled what came before them."""
    for line in lines:
        if line.startswith(f"/ping {SYNC_TOKEN}"):
            core.receive(event(type="pong", token=line.removeprefix("/ping ")))


# ------------------------------------------------------------------------------------------------ decoding


@given(st.binary(max_size=300))
def test_decoding_never_raises_on_any_bytes(raw: bytes) -> None:
    ev.Decoder().decode(raw)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=8)


@given(st.sampled_from(sorted(ev.KNOWN_TYPES)), st.dictionaries(
    st.sampled_from(["room", "nick", "id", "time", "text", "members", "to", "history", "more", "reason", "code",
                     "count", "old", "new", "topic", "change", "rooms", "lines", "token", "message", "command"]),
    json_values, max_size=8))
def test_no_event_the_server_could_send_crashes_the_core(kind: str, fields: dict[str, Any]) -> None:
    core = online_core()
    core.receive(ev.Decoder().decode(json.dumps({**fields, "type": kind}).encode()))


def test_a_well_formed_message_decodes_and_a_wrong_one_is_garbage() -> None:
    ok = message(7, "hi")
    assert isinstance(ok, protocol.ChatMessage) and ok.id == 7 and ok.time == 1767225600.0
    assert isinstance(event(type="message", id=1, time=T, nick="a", text="no room"), ev.Garbage)
    assert isinstance(event(type="private", id=1, time=T, nick="a", text="no to"), ev.Garbage)
    assert isinstance(event(type="someday", x=1), ev.Unknown)
    assert isinstance(ev.Decoder().decode(b"*** Welcome"), ev.TextLine)


# --------------------------------------------------------------------------------------------------- model


@given(st.lists(st.integers(min_value=1, max_value=60), max_size=80))
def test_messages_stay_in_id_order_and_never_twice(ids: list[int]) -> None:
    model = ClientModel("test")
    room = model.room("lobby")
    model.add(room, Entry(EntryKind.MARK, "joined"))
    for i in ids:
        model.add(room, Entry(EntryKind.MESSAGE, f"m{i}", id=i))
    shown = [e.id for e in room.entries if e.id is not None]
    assert shown == sorted(set(ids))
    replayed: list[Entry] = []  # the inserts, replayed in order, give the same scrollback (what a view does)
    for insert in model.take_inserts():
        replayed.insert(insert.index, insert.entry)
    assert replayed == room.entries


def test_older_messages_go_above_and_missed_ones_before_the_next_known_one() -> None:
    model = ClientModel("test")
    room = model.room("dev")
    for entry in (Entry(EntryKind.MESSAGE, "10", id=10), Entry(EntryKind.STATUS, "disconnected"),
                  Entry(EntryKind.MESSAGE, "30", id=30)):
        model.add(room, entry)
    model.add(room, Entry(EntryKind.MESSAGE, "20", id=20))  # missed while away: after the notice, before 30
    model.add(room, Entry(EntryKind.MESSAGE, "5", id=5))  # older history: at the top
    assert [e.text for e in room.entries] == ["5", "10", "disconnected", "20", "30"]


def test_unread_counts_only_new_messages_from_others_elsewhere() -> None:
    core = online_core()
    core.receive(event(type="joined", room="dev", members=["alice"], topic="t", time=T))
    assert core.model.current.title == "#lobby"  # joined by the server, not asked for: stay where we are
    core.receive(message(1, "in dev", room="dev"))
    core.receive(message(2, "mine", nick="alice", room="dev"))
    core.receive(message(3, "alice: look", room="dev"))
    dev = core.model.get("#dev")
    assert dev is not None and dev.unread == 2 and dev.mentioned
    core.receive(message(4, "here", room="lobby"))
    assert core.model.get("#lobby").unread == 0  # it is shown
    core.model.select("#dev")
    assert dev.unread == 0 and not dev.mentioned


# ---------------------------------------------------------------------------------------------------- core


def test_input_is_spelled_out_for_the_conversation_shown() -> None:
    core = online_core()
    said = lambda line: (core.user_input(line), sent(core))  # noqa: E731
    assert said("hello") == (Outcome.SENT, ["/msg #lobby hello"])
    assert said("//slash") == (Outcome.SENT, ["/msg #lobby /slash"])
    assert said("/me waves") == (Outcome.SENT, ["/me #lobby waves"])
    assert said("/topic new topic") == (Outcome.SENT, ["/topic #lobby new topic"])
    assert said("/who") == (Outcome.SENT, ["/who #lobby"])
    assert said("/names") == (Outcome.SENT, ["/who #lobby"])  # the server's aliases are the client's too
    assert said("/rooms") == (Outcome.SENT, ["/rooms"])
    assert said("/format text") == (Outcome.LOCAL, [])
    assert said("/query bob") == (Outcome.LOCAL, [])
    assert core.model.current.title == "bob"
    assert said("psst") == (Outcome.SENT, ["/msg bob psst"])
    assert said("/me waves")[0] is Outcome.LOCAL  # no private actions on this server
    assert said("/quit bye now") == (Outcome.QUIT, [])
    assert core.quit_reason == "bye now"


def test_while_offline_input_is_kept_and_nothing_is_sent() -> None:
    core = online_core()
    core.connection_lost("gone")
    assert core.user_input("hello?") is Outcome.KEPT and core.take_outbox() == []
    assert core.user_input("/reconnect") is Outcome.RECONNECT


def test_on_reconnect_rooms_are_rejoined_and_a_lobby_we_had_left_is_left_again() -> None:
    core = online_core()
    core.receive(event(type="joined", room="dev", members=["alice"], topic=None, time=T))
    core.receive(event(type="part", room="lobby", nick="alice", reason=None, time=T))
    assert [c.title for c in core.model.rooms()] == ["#dev"]
    core.connection_lost("gone")
    core.connection_opened()
    assert sent(core) == ["/format json", "/nick alice"]
    core.receive(event(type="welcome", nick="alice", max_line=4096))
    assert sent(core) == ["/join dev", "/ping chat-client:rejoined"]
    core.receive(event(type="joined", room="lobby", members=["alice"], topic=None, time=T))  # the server's lobby
    assert sent(core) == ["/leave #lobby"]
    core.receive(event(type="part", room="lobby", nick="alice", reason=None, time=T))
    core.receive(event(type="joined", room="dev", members=["alice"], topic=None, time=T))
    assert [c.title for c in core.model.rooms()] == ["#dev"] and core.model.get("#dev").joined


def test_a_taken_nick_after_a_reconnect_gets_a_stand_in_then_is_taken_back() -> None:
    core = online_core()
    core.connection_lost("gone")
    core.connection_opened()
    core.take_outbox()
    core.receive(event(type="error", code="nick_taken", message="taken", command="nick"))
    assert sent(core) == ["/nick alice_"]
    core.receive(event(type="welcome", nick="alice_", max_line=4096))
    core.take_outbox()
    assert core.wants_nick_back
    core.reclaim_nick()
    assert sent(core) == ["/nick alice"]
    core.receive(event(type="error", code="nick_taken", message="still taken", command="nick"))
    assert not any(e.kind is EntryKind.ERROR for e in core.model.current.entries)  # retried quietly
    core.reclaim_nick()
    core.receive(event(type="nick", old="alice_", new="alice", time=T))
    assert core.model.nick == "alice" and not core.wants_nick_back


def test_alternate_nicks_are_valid_and_distinct() -> None:
    for nick in ("a", "alice", "x" * 20):
        stand_ins = [alternate_nick(nick, n) for n in range(1, 8)]
        assert all(is_valid_nick(s) and s != nick for s in stand_ins)
        assert len(set(stand_ins)) == len(stand_ins)


# ----------------------------------------------------------------------------------------------- input line


def test_tab_cycles_through_matches_and_keeps_what_follows() -> None:
    completer = Completer()
    done = completer.complete("hi b and more", 4, [], ["bob", "Bella", "carol"], [])
    assert done is not None and done.value == "hi bob and more" and done.cursor == 6
    again = completer.complete(done.value, done.cursor, [], ["bob", "Bella", "carol"], [])
    assert again is not None and again.value == "hi Bella and more"
    assert completer.complete("/his", 4, ["history", "help"], [], []).value == "/history "  # type: ignore[union-attr]
    assert completer.complete("/join d", 7, [], ["dave"], ["dev"]).value == "/join dev "  # type: ignore[union-attr]
    assert completer.complete("zz", 2, [], ["bob"], []) is None


def test_history_recalls_lines_and_keeps_the_draft() -> None:
    history = InputHistory()
    for line in ("one", "two", "two", ""):
        history.add(line)
    assert history.lines == ["one", "two"]
    assert history.previous("draft") == "two"
    assert history.previous("two") == "one"
    assert history.previous("one") is None
    assert history.next() == "two"
    assert history.next() == "draft"
    assert history.next() is None


# ------------------------------------------------------------------------------------- splitting, pacing


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=400), st.integers(4, 60))
def test_split_parts_fit_the_budget_and_join_back_to_the_text(text: str, budget: int) -> None:
    parts = split_text(text, budget)
    assert all(len(p.encode("utf-8")) <= budget for p in parts)
    assert all(p.strip(" ") for p in parts) or parts == [text]  # never a part of spaces only
    assert "".join(parts).replace(" ", "") == text.replace(" ", "")  # only runs of spaces may go (the server
    # drops spaces that start a message anyway)


def test_split_prefers_spaces_and_keeps_combining_marks_with_their_letter() -> None:
    assert split_text("hello world again", 12) == ["hello world ", "again"]
    assert split_text("e\u0301" * 5, 6) == ["e\u0301e\u0301", "e\u0301e\u0301", "e\u0301"]  # é as e + accent


def test_a_long_text_goes_out_in_windows_each_closed_by_a_sync_ping() -> None:
    core = online_core()
    assert core.user_input("\n") is Outcome.LOCAL
    assert core.typed.say_lines([f"line {i}" for i in range(WINDOW + 5)]) is Outcome.SENT
    first = core.take_outbox()
    assert len(first) == WINDOW + 1 and first[-1].startswith(f"/ping {SYNC_TOKEN}")
    assert core.take_outbox() == []  # the window is full until the server answers
    answer(core, first)
    second = core.take_outbox()
    assert second[:-1] == [f"/msg #lobby line {i}" for i in range(WINDOW, WINDOW + 5)]
    assert core.outgoing.lag is not None


def test_a_refused_line_leaves_nothing_unconfirmed_once_its_sync_is_answered() -> None:
    core = online_core()
    core.user_input("/msg #bad! hi")  # refused by the server without naming a command (issue 8, item 6)
    assert core.take_outbox()[-1] == f"/ping {SYNC_TOKEN}2"
    core.receive(event(type="error", code="invalid_room", message="bad room", command=None))
    core.receive(event(type="pong", token=f"{SYNC_TOKEN}2"))  # the first answered registration
    core.connection_lost("gone")
    assert not any("may not have been delivered" in e.text for c in core.model.conversations.values()
                   for e in c.entries)


def test_a_message_without_its_answer_when_the_connection_drops_is_pointed_out() -> None:
    core = online_core()
    core.user_input("are you there?")
    core.take_outbox()
    core.typed.say_lines([f"queued {i}" for i in range(WINDOW + 3)])
    core.take_outbox()
    core.connection_lost("gone")
    errors = [e.text for e in core.model.get("#lobby").entries if e.kind is EntryKind.ERROR]
    assert any("may not have been delivered" in t for t in errors)
    assert any("4 lines were not sent" in t for t in errors)  # the window had room for WINDOW - 1 more


def test_a_line_the_server_would_refuse_as_too_long_is_kept_not_sent() -> None:
    core = online_core()
    assert core.user_input("/topic " + "x" * 5000) is Outcome.KEPT
    assert sent(core) == []


# ------------------------------------------------------------------------------------ mentions, ignoring


def test_private_messages_count_as_mentions_and_raise_alerts() -> None:
    core = online_core()
    core.receive(event(type="private", id=1, time=T, nick="bob", to="alice", text="psst"))
    core.receive(message(2, "alice: hi"))
    core.receive(message(3, "nothing for you"))
    private = core.model.get("bob")
    assert private is not None and private.mentioned and private.unread == 1
    assert [(a.nick, a.private) for a in core.take_alerts()] == [("bob", True), ("bob", False)]


def test_ignored_nicks_are_hidden_not_forgotten() -> None:
    core = online_core()
    core.receive(message(1, "before"))
    assert core.set_ignored("Bob", True) and not core.set_ignored("bob", True)
    core.receive(message(2, "alice: spam"))
    core.receive(event(type="private", id=3, time=T, nick="bob", to="alice", text="more spam"))
    lobby = core.model.get("#lobby")
    assert [e.text for e in lobby.entries if e.is_message and not e.hidden] == []
    assert lobby.newest_id == 2 and core.take_alerts() == []  # kept for paging and duplicates, never rung
    assert core.model.get("bob").unread == 0
    core.set_ignored("bob", False)
    assert [e.text for e in lobby.entries if e.is_message and not e.hidden] == ["before", "alice: spam"]


def test_the_rejoined_mark_goes_after_the_backlog_so_catch_up_lands_above_it() -> None:
    core = online_core()
    core.receive(message(5, "seen"))
    core.connection_lost("gone")
    core.connection_opened()
    core.receive(event(type="welcome", nick="alice", max_line=4096))
    core.receive(event(type="joined", room="lobby", members=["alice"], topic=None, time=T))
    decoder = ev.Decoder()  # a backlog page comes in two lines
    for line in (dict(type="message", id=9, time=T, room="lobby", nick="bob", text="backlog 9", history=True),
                 dict(type="history_end", room="lobby", count=1, more=True, reason="backlog")):
        core.receive(decoder.decode(json.dumps(line).encode()))
    core.receive(message(10, "live 10"))
    core.receive(message(7, "missed 7"))  # a catch-up page, late
    texts = [e.text for e in core.model.get("#lobby").entries if e.is_message or e.text.startswith("Rejoined")]
    assert texts == ["seen", "missed 7", "backlog 9", "Rejoined #lobby (1 member)", "live 10"]


def test_verbs_come_from_the_servers_commands() -> None:
    from chat.client.commands import QUIT_VERBS, is_quit
    from chat.protocol import commands as server

    assert {server.Quit.name, *server.Quit.aliases} == QUIT_VERBS
    assert all(is_quit(line) for line in ("/quit", "/BYE now", "!DISCONNECT", " !disconnect "))
    assert not any(is_quit(line) for line in ("quit", "//quit", "/quitter"))
    core = online_core()
    assert {"j", "part", "tell", "names", "ignore", "lastlog"} <= set(core.typed.verbs)
