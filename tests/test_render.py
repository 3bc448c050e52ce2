"""Rendering: pure functions from events to text and JSON lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from chat.protocol.errors import ErrorCode
from chat.protocol.events import ChatMessage, Error, History, MessageKind
from chat.protocol.render import iso_time, render_json, render_text, short_time


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
        "type": "error", "code": "nick_taken", "message": "Taken.", "command": "nick", "subject": "bob"}



@given(st.text())
def test_a_json_line_is_one_line_for_splitlines_and_means_the_same(text: str) -> None:
    from chat.protocol.render import json_line

    line = json_line({"text": text})  # whatever text reaches it (it is sanitized before, but this holds anyway)
    assert line.splitlines() == [line]
    assert json.loads(line) == {"text": text}


def test_json_lines_escape_what_splitlines_breaks_on() -> None:
    from chat.protocol.render import json_line

    assert json_line({"t": "a\u2028b\u2029c\x85d"}) == '{"t":"a\\u2028b\\u2029c\\u0085d"}'
