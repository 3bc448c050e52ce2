"""Rendering: pure functions from events to text and JSON lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import get_args

from hypothesis import given
from hypothesis import strategies as st

from chat.protocol.errors import ErrorCode
from chat.protocol.events import (
    AccountChange,
    ChatMessage,
    Error,
    Event,
    History,
    Invite,
    Kick,
    MessageKind,
    Mode,
    ModeChange,
    PasswordWanted,
    PrivateHistory,
    RoomModes,
    WhoIs,
)
from chat.protocol.render import _MODE_TEXT, iso_time, render_json, render_text, short_time


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_times_are_utc_and_rounded_like_datetime(t: float) -> None:
    moment = datetime.fromtimestamp(t, UTC)
    assert short_time(t) == moment.strftime("%Y-%m-%d %H:%M:%S")
    assert iso_time(t) == moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_history_is_marked_and_ends_with_a_summary() -> None:
    m = ChatMessage(7, MessageKind.ACTION, "bob", "waves", 1_700_000_000.0, room="dev")
    text = render_text(History("dev", [m], more=True)).splitlines()
    assert text == ["[#dev] [2023-11-14 22:13:20 history] * bob waves",
                    "[#dev] *** End of history: 1 message; /history shows older ones."]
    lines = [json.loads(line) for line in render_json(History("dev", [m], more=False)).splitlines()]
    assert lines[0] == {"type": "action", "id": 7, "time": "2023-11-14T22:13:20.000Z", "room": "dev", "nick": "bob",
                        "text": "waves", "history": True}
    assert lines[1] == {"type": "history_end", "room": "dev", "count": 1, "more": False, "reason": "backlog"}


def test_an_error_is_one_line_with_its_code() -> None:
    assert render_text(Error(ErrorCode.NICK_TAKEN, "Taken.")) == "[error nick_taken] Taken.\n"
    assert json.loads(render_json(Error(ErrorCode.NICK_TAKEN, "Taken.", "nick", "bob"))) == {
        "type": "error", "code": "nick_taken", "message": "Taken.", "command": "nick", "subject": "bob",
        "room": None}



@given(st.text())
def test_a_json_line_is_one_line_for_splitlines_and_means_the_same(text: str) -> None:
    from chat.protocol.render import json_line

    line = json_line({"text": text})  # whatever text reaches it (it is sanitized before, but this holds anyway)
    assert line.splitlines() == [line]
    assert json.loads(line) == {"text": text}


def test_json_lines_escape_what_splitlines_breaks_on() -> None:
    from chat.protocol.render import json_line

    assert json_line({"t": "a\u2028b\u2029c\x85d"}) == '{"t":"a\\u2028b\\u2029c\\u0085d"}'


def test_every_account_and_moderation_event_renders_in_both_formats() -> None:
    t = 1_700_000_000.0
    pm = ChatMessage(9, MessageKind.PRIVATE, "alice", "psst", t, to="bob")
    events: list[Event] = [
        AccountChange("registered", "alice", "alice"), AccountChange("logged_in", "alice", "alice"),
        AccountChange("logged_out", "alice", "Guest3"), AccountChange("password_changed", "alice", "alice"),
        PasswordWanted("alice"), WhoIs("bob", True, False, None, None, 200, ["dev"]),
        WhoIs("carol", False, True, t, t, None, [], admin=True), PrivateHistory("bob", [pm], True),
        PrivateHistory(None, [pm], False, "offline"), PrivateHistory("bob", [], False),
        Kick("dev", "bob", "alice", None, t), Invite("dev", "alice", "bob"),
        RoomModes("dev", "+ik", "alice", "sesame", ["alice"], [], ["troll"], []),
        RoomModes("dev", "", None, None, [], [], [], []),
        *(Mode("dev", "alice", mode, "bob" if mode[1] in "ovb" else None, t) for mode in _MODE_TEXT),
    ]
    for event in events:
        assert render_text(event).endswith("\n") and "{" not in render_text(event)
        for line in render_json(event).splitlines():
            assert json.loads(line)["type"]
    assert {type(e) for e in events} >= {AccountChange, PasswordWanted, WhoIs, PrivateHistory, Kick, Invite,
                                          RoomModes, Mode}
    assert all(t in get_args(Event) for t in (AccountChange, Mode, RoomModes))
    assert set(_MODE_TEXT) == set(get_args(ModeChange))  # a text for every change a Mode event may carry
    assert render_text(WhoIs("bob", True, False, None, None, 200, ["dev"])) == (
        "*** bob: online, idle 3m 20s, not registered (a guest), in #dev\n")
    assert render_text(RoomModes("dev", "+ik", "alice", "sesame", ["alice"], [], ["troll"], [])) == (
        "[#dev] *** #dev: invite-only, key sesame; owner alice; ops: alice; banned: troll\n")
    assert render_text(Mode("dev", "alice", "+k", None, t)) == (
        "[#dev] *** alice set a key on #dev (a password to join)\n")
    offline = render_json(PrivateHistory(None, [pm], False, "offline")).splitlines()
    assert json.loads(offline[0])["history"] is True
    assert json.loads(offline[1]) == {"type": "private_history_end", "nick": None, "count": 1, "more": False,
                                      "reason": "offline"}
