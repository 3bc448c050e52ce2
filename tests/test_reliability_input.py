"""Hostile input, as properties (Hypothesis). These extend test_framing.py and test_commands.py: splits inside
UTF-8 characters, framing and parsing together, bounded time and memory for any input, the chat services driven
by any sequence of lines from several sessions, and the same over a real socket."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from test_framing import LINE_CHARS

from chat.protocol import commands as c
from chat.protocol.errors import ChatError
from chat.protocol.framing import LineFramer
from chat.server.member import Member
from chat.server.outbox import Outbox
from harness import ServerThread, World, capture_logs, record_figures, scale, wait_for

MAX = 64
TRIED: dict[str, int] = {}  # inputs each property tried, for the figures


def _count(name: str) -> None:
    TRIED[name] = TRIED.get(name, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    record_figures("hypothesis", inputs_tried=sum(TRIED.values()), **TRIED)


def _meaning(frame: object) -> object:
    """What a frame means once parsed: the command, or the error code it is refused with."""
    if isinstance(frame, ChatError):
        return frame.code
    try:
        return c.parse_line(frame)  # type: ignore[arg-type]
    except ChatError as e:
        return e.code


def _feed(data: bytes, cuts: list[int], max_line: int = MAX) -> list[object]:
    framer = LineFramer(max_line)
    out: list[object] = []
    start = 0
    for point in [*sorted({p % (len(data) + 1) for p in cuts}), len(data)]:
        out.extend(framer.feed(data[start:point]))
        assert framer.buffered <= max_line + 1  # never more than one line's worth held, whatever arrives
        start = point
    return [_meaning(f) for f in out]


# --------------------------------------------------------------------------------------------- framing


@settings(max_examples=scale(300, 5000))
@given(st.lists(st.text(alphabet=LINE_CHARS, min_size=1, max_size=20), min_size=1, max_size=8), st.data())
def test_a_split_inside_a_utf8_character_changes_nothing(lines: list[str], data: st.DataObject) -> None:
    _count("utf8_splits")
    raw = "".join(line + "\n" for line in lines).encode()
    inside = [i for i in range(1, len(raw)) if raw[i] & 0xC0 == 0x80]  # between a character's bytes
    cuts = data.draw(st.lists(st.sampled_from(inside), max_size=10)) if inside else []
    assert _feed(raw, cuts) == _feed(raw, [])


@settings(max_examples=scale(300, 5000))
@given(st.binary(max_size=2000), st.lists(st.integers(min_value=0, max_value=2000), max_size=30))
def test_framing_and_parsing_in_any_pieces_mean_the_same_as_the_whole(data: bytes, cuts: list[int]) -> None:
    _count("framing_and_parsing")
    assert _feed(data, cuts) == _feed(data, [])


_HOSTILE = st.sampled_from([b"a", b" ", b"/", b"\n", b"\r", b"\r\n", b"\xff", b"\xc3", b"\xa9", b"\xf0\x9f\x8e",
                            b"\x00", b"#", b"9", b"/join ", b"/msg ", b"/topic #", b"/history ", b"before "])


@settings(deadline=timedelta(seconds=2), max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_HOSTILE, min_size=1, max_size=50), st.integers(min_value=1, max_value=400))
def test_any_input_is_framed_and_parsed_in_bounded_time(pattern: list[bytes], repeat: int) -> None:
    """Up to ~1 MB of adversarial bytes, fed byte by byte where small: linear work, never a hang."""
    _count("bounded_time")
    data = b"".join(pattern) * repeat
    framer = LineFramer(4096)
    step = 1 if len(data) < 20_000 else 4096
    for i in range(0, len(data), step):
        for frame in framer.feed(data[i:i + step]):
            _meaning(frame)
        assert framer.buffered <= 4097


def test_bytes_fed_one_by_one_cost_linear_work() -> None:
    """Long lines arriving a byte at a time: the work grows with the bytes, not their square. Measured as this
    thread's CPU time for 4x the input against 1x (linear: about 4; quadratic: about 16), so a busy machine
    changes both alike; no absolute time is asserted."""
    def cpu_for(lines: int) -> float:
        framer = LineFramer(4096)
        data = ("é" * 1000 + "\n").encode() * lines  # 2 KB lines, multi-byte, in 1-byte pieces
        start = time.thread_time()
        frames = sum(len(framer.feed(data[i:i + 1])) for i in range(len(data)))
        assert frames == lines
        return time.thread_time() - start

    small, large = min(cpu_for(50) for _ in range(3)), min(cpu_for(200) for _ in range(3))
    assert large < 8 * small + 0.05, f"4x the bytes took {large / small:.1f}x the work"


# --------------------------------------------------------------------------------------- chat services

_NAMES = ["al", "bo", "Al", "cy", "bad!", "", "x" * 21]
_ROOMS = ["lobby", "dev", "#dev", "DEV", "a.b", "-no", "#"]
_TEXT = st.text(max_size=30)


def _line() -> st.SearchStrategy[str]:
    name, room = st.sampled_from(_NAMES), st.sampled_from(_ROOMS)
    return st.one_of(
        _TEXT,
        st.builds(lambda n: n, name),
        st.builds(lambda n: f"/nick {n}", name),
        st.builds(lambda r: f"/join {r}", room),
        st.builds(lambda r, t: f"/leave {r} {t}", room, _TEXT),
        st.just("/leave"),
        st.builds(lambda n, t: f"/msg {n} {t}", st.one_of(name, room), _TEXT),
        st.builds(lambda t: f"/me {t}", _TEXT),
        st.builds(lambda r, t: f"/topic {r} {t}", room, _TEXT),
        st.builds(lambda r, n: f"/history {r} {n}", room, st.integers(-1, 600)),
        st.sampled_from(["/who", "/rooms", "/help", "/help msg", "/ping x", "/format json", "/format text",
                         "/quit", "!DISCONNECT", "/", "//", "/frob"]),
        st.builds(lambda v, t: f"/{v} {t}", st.sampled_from(sorted(c.VERBS)), _TEXT),
    )


class ChatServices(RuleBasedStateMachine):
    """Several members send any lines; after each one the state must still agree with itself."""

    @initialize()
    def start(self) -> None:
        self.world = World(backlog=3, clock=time.time)
        self.live: list[Member] = []
        self.closed: list[Member] = []
        for _ in range(3):
            self.connect()

    def connect(self) -> None:
        self.live.append(self.world.member())

    @rule(who=st.integers(0, 5), line=_line())
    def send(self, who: int, line: str) -> None:
        _count("service_lines")
        m = self.live[who % len(self.live)]
        out = self.world.line(m, line)  # any exception other than a handled refusal fails the property
        for recipients, _item in out.deliveries:
            for r in recipients:
                assert r in self.live, "a delivery to a member that is gone"
        if m.gone:  # it quit: the loop would close it now
            self.live.remove(m)
            self.closed.append(m)
            self.connect()

    @precondition(lambda self: len(self.live) > 1)
    @rule(who=st.integers(0, 5))
    def drop(self, who: int) -> None:
        m = self.live.pop(who % len(self.live))
        self.world.service.disconnected(m, "dropped", Outbox())
        self.closed.append(m)
        self.connect()

    @invariant()
    def consistent(self) -> None:
        assert self.world.state.problems(set(self.live)) == []
        for m in self.closed:
            assert not m.registered and not m.rooms and self.world.state.nicks.get(m.key) is not m


ChatServices.TestCase.settings = settings(max_examples=scale(300, 5000), stateful_step_count=40, deadline=None)
test_any_lines_from_any_sessions_keep_the_chat_state_consistent = ChatServices.TestCase


# ---------------------------------------------------------------------------------------- over a socket


def test_a_line_in_pieces_over_a_real_socket_means_the_whole_line(make_server: Callable[..., ServerThread]) -> None:
    server = make_server()
    alice = server.client("alice")
    bob = server.client("bob")

    def buffered() -> int:
        return server.loop.call_soon(lambda: sum(c.codec.buffered for c in server.loop.connections.values())).result(5)

    plain = st.text(alphabet=LINE_CHARS, min_size=1, max_size=40).filter(
        lambda t: bool(t.strip()) and t[0] != "/" and t.strip().upper() != "!DISCONNECT")

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(plain, st.data())
    def check(text: str, data: st.DataObject) -> None:
        _count("socket_splits")
        raw = text.encode()
        cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=4))))
        start = 0
        for cut in [*cuts, len(raw)]:
            if cut <= start:
                continue
            alice.send_raw(raw[start:cut])  # a piece, in a segment of its own: wait until the server holds it
            wait_for(lambda n=cut: buffered() == n, what="the server to hold the piece")
            start = cut
        alice.send_raw(b"\n")
        expected = f"[#lobby] alice: {c.parse_line(text).text}"  # type: ignore[union-attr]
        assert bob.expect("alice: ") == expected

    check()


def test_history_ids_past_64_bits_are_a_bad_argument_and_log_nothing(make_server: Callable[..., ServerThread]) -> None:
    server = make_server()
    alice = server.client("alice")
    with capture_logs() as logs:
        for line in ("/history 5 before 99999999999999999999", f"/history 5 before {2**63}",
                     f"/history after {2**63}", "/history lobby 5 after 99999999999999999999"):
            alice.send(line)
            assert alice.expect("[error").startswith("[error bad_argument] "), line
        alice.sync()
    assert logs.problems() == []


@pytest.mark.parametrize("cut", [0, 1, 4096, 4097])
def test_a_line_of_exactly_max_line_bytes_ended_by_crlf_is_taken(make_server: Callable[..., ServerThread],
                                                                  cut: int) -> None:
    server = make_server()
    alice, bob = server.client("alice"), server.client("bob")
    line = b"x" * server.config.max_line + b"\r\n"

    def buffered() -> int:
        return server.loop.call_soon(lambda: sum(c.codec.buffered for c in server.loop.connections.values())).result(5)

    alice.send_raw(line[:cut])
    wait_for(lambda: buffered() == cut, what="the server to hold the first piece")  # then the rest, on its own
    alice.send_raw(line[cut:])
    assert bob.expect("alice: ") == "[#lobby] alice: " + "x" * server.config.max_line
