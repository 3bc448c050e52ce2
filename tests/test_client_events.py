"""One definition of each event: every event the server can render, in text and in JSON, decodes back with the
client's decoder into the same event. (The decoder is derived from chat.protocol.events and render.py.)"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, get_args

from hypothesis import given
from hypothesis import strategies as st

from chat.client import events as ev
from chat.protocol import events as protocol
from chat.protocol.events import ChatMessage, Event, History, MessageKind, SearchResults
from chat.protocol.render import render_json, render_text
from chat.protocol.text import sanitize

EVENT_CLASSES: tuple[type[Any], ...] = get_args(Event)
# what the server sends: any text but surrogates (UTF-8 cannot carry them), its control characters made visible
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30).map(sanitize)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,19}", fullmatch=True)
times = st.floats(min_value=1, max_value=4_000_000_000, allow_nan=False)  # 1970 to 2096 (render.py reads 0 as no time)


@st.composite
def messages(draw: st.DrawFn, room: str | None = None) -> ChatMessage:
    kind = draw(st.sampled_from(MessageKind)) if room is None else draw(
        st.sampled_from([MessageKind.MESSAGE, MessageKind.ACTION, MessageKind.NOTICE]))
    private = kind in protocol.PRIVATE_KINDS
    return ChatMessage(draw(st.integers(1, 2**53)), kind, draw(names), draw(texts), draw(times),
                       room=None if private else room or draw(names), to=draw(names) if private else None)


@st.composite
def private_histories(draw: st.DrawFn) -> protocol.PrivateHistory:
    private = messages().filter(lambda m: m.private)
    offline = draw(st.booleans())
    return protocol.PrivateHistory(None if offline else draw(names), draw(st.lists(private, max_size=4)),
                                   draw(st.booleans()), "offline" if offline else "page")


@st.composite
def histories(draw: st.DrawFn) -> History:
    room = draw(names)
    return History(room, draw(st.lists(messages(room), max_size=4)), draw(st.booleans()),
                   draw(st.sampled_from(["backlog", "page"])))


@st.composite
def search_pages(draw: st.DrawFn) -> SearchResults:
    found = draw(st.lists(messages(), max_size=4))
    more = draw(st.booleans()) and bool(found)
    return SearchResults(draw(texts), found, more, found[-1].id if more else None, draw(st.booleans()))


people = st.builds(protocol.Person, texts, texts, texts, st.none() | texts)


def _field_strategy(hint: Any, name: str) -> st.SearchStrategy[Any]:
    if hint == protocol.Person | None:
        return st.none() | people
    if hint == list[protocol.Person]:
        return st.lists(people, max_size=4)
    if hint == list[protocol.Target]:
        return st.lists(st.builds(protocol.Target, st.none() | texts, st.none() | texts, times), max_size=4)
    if name in ("time", "registered_at", "last_seen", "signed_on", "topic_at", "created_at"):
        return times if hint is float else st.none() | times
    if name == "idle":  # seconds, sent rounded
        return st.none() | st.integers(0, 10**7).map(float)
    if hint is str:
        return texts
    if hint == str | None:
        return st.none() | texts
    if hint == list[str]:
        return st.lists(texts, max_size=4)
    return st.from_type(hint)


def events_of(cls: type[Any]) -> st.SearchStrategy[Any]:
    """Any event of class `cls`: those with nested parts by hand, every other from its fields' types."""
    if cls is ChatMessage:
        return messages()
    if cls is History:
        return histories()
    if cls is SearchResults:
        return search_pages()
    if cls is protocol.PrivateHistory:
        return private_histories()
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{f.name: _field_strategy(hints[f.name], f.name) for f in dataclasses.fields(cls)})


any_event = st.one_of(*(events_of(cls) for cls in EVENT_CLASSES))


def decode_all(rendered: str) -> list[ev.Incoming]:
    """What the client makes of a rendering: its lines split as the connection splits them (on \\n only)."""
    decoder = ev.Decoder()
    decoded = [decoder.decode(line.encode("utf-8")) for line in rendered.split("\n")[:-1]]
    return [item for item in decoded if item is not None]


@given(any_event)
def test_every_event_rendered_as_json_decodes_to_the_same_event(event: Event) -> None:
    rendered = render_json(event)
    (decoded,) = decode_all(rendered)
    assert type(decoded) is type(event)
    assert render_json(decoded) == rendered  # times keep the milliseconds the wire has
    assert render_text(decoded) == render_text(event)  # so plain mode shows what nc shows


@given(any_event)
def test_every_event_rendered_as_text_reads_as_text_lines(event: Event) -> None:
    rendered = render_text(event)
    decoded = decode_all(rendered)
    assert all(isinstance(item, ev.TextLine) for item in decoded)
    assert [item.text for item in decoded if isinstance(item, ev.TextLine)] == rendered.split("\n")[:-1]


def test_the_client_knows_every_json_type_the_server_renders() -> None:
    types = ev.event_types()
    assert set(types.values()) == set(EVENT_CLASSES)  # derived from the server's union: nothing left out
    assert {"message", "action", "private", "history_end", "nick", "rooms", "format"} <= set(types)
    assert types["history_end"] is History and types["nick"] is protocol.NickChange


def test_a_history_page_comes_whole_and_lines_of_other_rooms_pass_through() -> None:
    decoder = ev.Decoder()
    page = History("dev", [ChatMessage(1, MessageKind.MESSAGE, "bob", "one", 0.0, room="dev")], True, "page")
    lines = render_json(page).split("\n")[:-1]
    assert decoder.decode(lines[0].encode()) is None  # held until its end
    live = decoder.decode(render_json(protocol.Join("lobby", "carol", 1.0)).encode())
    assert isinstance(live, protocol.Join)
    whole = decoder.decode(lines[1].encode())
    assert isinstance(whole, History) and [m.text for m in whole.messages] == ["one"]


def test_a_history_page_that_never_ends_is_dropped_not_hoarded() -> None:
    decoder = ev.Decoder(page_limit=10)
    line = render_json(History("dev", [ChatMessage(1, MessageKind.MESSAGE, "bob", "x", 0.0, room="dev")], False))
    first = line.split("\n")[0].encode()
    results = [decoder.decode(first) for _ in range(11)]
    assert results[:10] == [None] * 10 and isinstance(results[10], ev.Garbage)


def test_wrong_fields_and_unknown_types_never_pass_as_events() -> None:
    def decode(**fields: Any) -> ev.Incoming | None:
        return ev.Decoder().decode(json.dumps(fields).encode())

    assert isinstance(decode(type="join", room="dev", nick="bob", time="yesterday"), ev.Garbage)
    assert isinstance(decode(type="join", room="dev", nick="bob", time="2026-01-01T00:00:00"), ev.Garbage)  # no zone
    assert isinstance(decode(type="who", room="dev", members=[1, 2]), ev.Garbage)
    assert isinstance(decode(type="welcome", nick="alice"), ev.Garbage)  # the server always says its max_line
    unknown_code = decode(type="error", code="from_the_future", message="Slow down", command=None)
    assert isinstance(unknown_code, ev.Garbage) and "Slow down" in unknown_code.why  # the sentence still shows
    assert isinstance(decode(type="someday", x=1), ev.Unknown)
    joined = decode(type="joined", room="dev", members=["a"], topic=None, time="2026-01-01T00:00:00Z", new=1)
    assert isinstance(joined, protocol.Joined)  # a field from a newer server is ignored


def test_a_private_history_page_comes_whole() -> None:
    decoder = ev.Decoder()
    pm = ChatMessage(5, MessageKind.PRIVATE, "bob", "psst", 1.0, to="alice")
    lines = render_json(protocol.PrivateHistory(None, [pm, pm], False, "offline")).split("\n")[:-1]
    assert [decoder.decode(line.encode()) for line in lines[:2]] == [None, None]
    live = decoder.decode(render_json(ChatMessage(6, MessageKind.PRIVATE, "carol", "now", 2.0, to="alice")).encode())
    assert isinstance(live, ChatMessage) and live.text == "now"  # a live private message is not held
    whole = decoder.decode(lines[2].encode())
    assert isinstance(whole, protocol.PrivateHistory) and whole.reason == "offline" and len(whole.messages) == 2
