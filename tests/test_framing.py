"""Line framing: tables for the rules, properties for any bytes in any pieces."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat.protocol.errors import ChatError, ErrorCode
from chat.protocol.framing import LineFramer

MAX = 64


def frames(data: bytes, max_line: int = MAX) -> list[str | str]:
    return [f if isinstance(f, str) else f"!{f.code.value}" for f in LineFramer(max_line).feed(data)]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"hello\n", ["hello"]),
        (b"hello\r\n", ["hello"]),
        (b"a\nb\r\nc\n", ["a", "b", "c"]),
        (b"no newline yet", []),
        (b"\n", [""]),
        (b"caf\xc3\xa9\n", ["café"]),
        (b"bad \xff byte\nok\n", ["!invalid_utf8", "ok"]),
        (b"x" * MAX + b"\n", ["x" * MAX]),
        (b"x" * MAX + b"\r\n", ["x" * MAX]),
        (b"x" * (MAX + 1) + b"\n", ["!line_too_long"]),
        (b"x" * (MAX * 3) + b"\nafter\n", ["!line_too_long", "after"]),
        (b"half\r", []),
    ],
)
def test_frames(data: bytes, expected: list[str]) -> None:
    assert frames(data) == expected


def test_an_overlong_line_is_never_buffered_whole() -> None:
    framer = LineFramer(MAX)
    reported = framer.feed(b"y" * (MAX + 10))
    assert [f.code for f in reported if isinstance(f, ChatError)] == [ErrorCode.LINE_TOO_LONG]
    for _ in range(1000):  # a peer streaming forever without a newline
        assert framer.feed(b"y" * 4096) == []
        assert framer.buffered == 0
    assert framer.feed(b"tail\nnext\n") == ["next"]


def test_buffer_stays_within_the_cap() -> None:
    framer = LineFramer(MAX)
    for _ in range(MAX):
        framer.feed(b"z")
        assert framer.buffered <= MAX + 1


def _feed_in_pieces(data: bytes, cuts: list[int]) -> list[object]:
    framer = LineFramer(MAX)
    out: list[object] = []
    points = sorted({c % (len(data) + 1) for c in cuts})
    start = 0
    for point in [*points, len(data)]:
        out.extend(framer.feed(data[start:point]))
        start = point
    return [f if isinstance(f, str) else f.code for f in out]


@given(st.binary(max_size=600), st.lists(st.integers(min_value=0, max_value=600), max_size=20))
def test_any_split_means_the_same_as_the_whole(data: bytes, cuts: list[int]) -> None:
    whole = _feed_in_pieces(data, [])
    assert _feed_in_pieces(data, cuts) == whole


@given(st.binary(max_size=400))
def test_byte_by_byte_means_the_same_as_the_whole(data: bytes) -> None:
    assert _feed_in_pieces(data, list(range(len(data)))) == _feed_in_pieces(data, [])


LINE_CHARS = st.characters(exclude_characters="\n\r", exclude_categories=("Cs",))


@given(st.lists(st.text(alphabet=LINE_CHARS, max_size=30), max_size=10))
def test_valid_lines_round_trip(lines: list[str]) -> None:
    data = "".join(line + "\n" for line in lines).encode()
    expected = [line if len(line.encode()) <= MAX else ErrorCode.LINE_TOO_LONG for line in lines]
    assert _feed_in_pieces(data, []) == expected
