"""The chat services on their own: commands in, state changes and planned deliveries out, no event loop and no
sockets (members sit on bare Links: services never look past them)."""

from __future__ import annotations

import pytest

from chat.protocol.errors import ErrorCode
from chat.protocol.events import ChatMessage, DeliveryState, Error, Join, Joined, MessageKind, Part, Quit
from chat.server.member import Member
from chat.server.outbox import Backlog, CloseAfterFlush, Outbox
from chat.server.reads import HistoryRequest
from harness import World


@pytest.fixture
def world() -> World:
    return World()


def events_for(out: Outbox, s: Member) -> list[object]:
    return [item for to, item in out.deliveries if s in to]


def test_registration_joins_the_lobby_and_tells_it(world: World) -> None:
    alice = world.member("alice")
    bob = world.member()
    out = world.line(bob, "bob")
    assert world.state.nicks == {"alice": alice, "bob": bob}
    assert [type(e).__name__ for e in events_for(out, bob)] == ["Welcome", "Joined"]
    joined = next(e for e in events_for(out, bob) if isinstance(e, Joined))
    assert joined.members == ["alice", "bob"]
    assert [type(e) for e in events_for(out, alice)] == [Join]
    assert world.state.rooms["lobby"].members == (alice, bob)
    assert [u.nick for u in out.writes.users] == ["bob"]


def test_a_message_is_stored_then_delivered_to_the_room(world: World) -> None:
    alice, bob = world.member("alice"), world.member("bob")
    out = world.line(alice, "hello")
    (message, room_id), = out.writes.messages
    assert isinstance(message, ChatMessage) and message.state is DeliveryState.PENDING
    assert room_id == world.state.rooms["lobby"].id
    assert out.deliveries == [(world.state.rooms["lobby"].members, message)]
    assert out.senders == {message.id: alice}
    assert bob in out.deliveries[0][0]


def test_backlog_is_captured_at_join_and_skips_failed_messages(world: World) -> None:
    alice = world.member("alice")
    sent = [world.line(alice, f"m{i}").writes.messages[0][0] for i in range(5)]
    for m in sent:
        m.state = DeliveryState.STORED
    sent[3].state = DeliveryState.FAILED
    bob = world.member()
    out = world.line(bob, "bob")
    backlog = next(e for e in events_for(out, bob) if isinstance(e, Backlog))
    assert [m.text for m in backlog.messages] == ["m1", "m2", "m4"]
    assert backlog.more  # m0 is older
    assert bob.cursors["lobby"] == sent[1].id


def test_leave_tells_the_room_including_the_leaver(world: World) -> None:
    alice, bob = world.member("alice"), world.member("bob")
    out = world.line(bob, "/leave lobby bye")
    (to, part), notice = out.deliveries[0], out.deliveries[1]
    assert isinstance(part, Part) and part.reason == "bye" and set(to) == {alice, bob}
    assert bob.current is None and world.state.rooms["lobby"].members == (alice,)
    assert notice[0] == (bob,)


def test_quit_frees_the_nick_at_once_and_closes_after_the_goodbye(world: World) -> None:
    alice, bob = world.member("alice"), world.member("bob")
    out = world.line(bob, "/quit gone")
    assert "bob" not in world.state.nicks
    assert bob.gone and not bob.registered
    kinds = [type(item).__name__ for _, item in out.deliveries]
    assert kinds == ["Goodbye", "CloseAfterFlush", "Quit"]
    quit_to, quit_event = out.deliveries[2]
    assert quit_to == (alice,) and isinstance(quit_event, Quit) and quit_event.reason == "gone"
    assert isinstance(out.deliveries[1][1], CloseAfterFlush)


@pytest.mark.parametrize(
    ("line", "code"),
    [("/msg nobody hi", ErrorCode.NO_SUCH_NICK), ("/leave nope", ErrorCode.NOT_IN_ROOM),
     ("/leave dev", ErrorCode.NOT_IN_ROOM), ("/nick alice", ErrorCode.NICK_TAKEN),
     ("/frob", ErrorCode.UNKNOWN_COMMAND), ("/msg #dev x", ErrorCode.NOT_IN_ROOM)],
)
def test_refusals_change_nothing(world: World, line: str, code: ErrorCode) -> None:
    world.member("alice")
    bob = world.member("bob")
    dev_owner = world.member("carol")
    world.line(dev_owner, "/join dev")
    before = (dict(world.state.nicks), {k: r.members for k, r in world.state.rooms.items()}, bob.nick)
    out = world.line(bob, line)
    (to, error), = out.deliveries
    assert to == (bob,) and isinstance(error, Error) and error.code is code
    assert not out.writes
    assert before == (dict(world.state.nicks), {k: r.members for k, r in world.state.rooms.items()}, bob.nick)


def test_history_continues_before_the_page_it_was_shown(world: World) -> None:
    alice = world.member("alice")
    first = world.line(alice, "/history 5", answer_reads=False).reads[0]
    assert isinstance(first, HistoryRequest) and first.continues and alice.waiting == [first]
    first.messages = [ChatMessage(7, MessageKind.MESSAGE, "x", "older", 0.0, room="lobby")]
    alice.waiting.clear()
    world.service.history_read(first)
    second = world.line(alice, "/history 5", answer_reads=False).reads[0]
    assert isinstance(second, HistoryRequest) and second.before == 7


def test_a_history_page_asked_by_id_does_not_move_the_cursor(world: World) -> None:
    alice = world.member("alice")
    cursor = alice.cursors["lobby"]
    request = world.line(alice, "/history 5 before 3", answer_reads=False).reads[0]
    assert isinstance(request, HistoryRequest) and not request.continues
    request.messages = [ChatMessage(2, MessageKind.MESSAGE, "x", "older", 0.0, room="lobby")]
    world.service.history_read(request)
    assert alice.cursors["lobby"] == cursor


def test_nick_change_reaches_everyone_sharing_a_room_once(world: World) -> None:
    alice, bob = world.member("alice"), world.member("bob")
    world.line(alice, "/join dev")
    world.line(bob, "/join dev")
    out = world.line(alice, "/nick alicia")
    (to, event), = out.deliveries
    assert sorted(s.nick for s in to) == ["alicia", "bob"]
    assert event.old == "alice" and event.new == "alicia"  # type: ignore[union-attr]
    assert world.state.nicks["alicia"] is alice and "alice" not in world.state.nicks
