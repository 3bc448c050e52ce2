"""The chat services on their own: commands in, state changes and planned deliveries out, no event loop and no
sockets (members sit on bare Links: services never look past them)."""

from __future__ import annotations

import pytest

from chat.protocol.errors import ErrorCode
from chat.protocol.events import ChatMessage, DeliveryState, Error, Join, Joined, MessageKind, Part, Quit, Who
from chat.server.member import Member
from chat.server.outbox import Backlog, CloseAfterFlush, Goodbye, Outbox
from chat.server.reads import HistoryRequest, RoomLookup
from chat.storage.records import FoundRoom, StoredRoom
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


def test_the_services_import_without_a_database_library() -> None:
    """Storage records carry no SQLAlchemy: the services run (and are tested) without one."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['sqlalchemy'] = None; sys.modules['alembic'] = None\n"
            "import chat.server.service, chat.server.outbox, chat.server.reads, chat.storage.records\n"
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr


def test_the_last_member_out_takes_the_room_out_of_memory(world: World) -> None:
    alice, bob = world.member("alice"), world.member("bob")
    world.line(alice, "/join dev")
    world.line(bob, "/join dev")
    world.line(alice, "/leave dev")
    assert "dev" in world.state.rooms
    world.line(bob, "/quit")
    assert "dev" not in world.state.rooms and world.problems() == []


def test_a_join_of_a_room_not_in_memory_waits_for_its_lookup(world: World) -> None:
    world.rooms_in_db["dev"] = FoundRoom(StoredRoom(7, "Dev", "Release", "carol", 1.0, 1.0), [
        ChatMessage(i, MessageKind.MESSAGE, "carol", f"m{i}", 1.0, room="Dev") for i in range(1, 6)])
    alice, bob = world.member("alice"), world.member("bob")
    asked = world.line(alice, "/join dev", answer_reads=False)
    (lookup,) = asked.reads
    assert isinstance(lookup, RoomLookup) and alice.waiting == [lookup] and "dev" not in alice.rooms
    world.line(bob, "/join DEV", answer_reads=False)  # a second joiner waits on the same lookup
    assert world.state.lookups["dev"] is lookup and lookup.joiners == [alice, bob]
    out = Outbox()
    world.answer(lookup, out)
    room = world.state.rooms["dev"]
    assert (room.id, room.name, room.topic, room.persisted) == (7, "Dev", "Release", True)
    assert room.members == (alice, bob) and not alice.waiting and not bob.waiting
    joined = next(e for e in events_for(out, alice) if isinstance(e, Joined))
    assert joined.topic == "Release"
    backlog = next(e for e in events_for(out, alice) if isinstance(e, Backlog))
    assert [m.text for m in backlog.messages] == ["m3", "m4", "m5"] and backlog.more  # the backlog is 3 here
    assert world.problems() == []


def test_a_lookup_that_read_before_the_rooms_row_was_committed_is_asked_again(world: World) -> None:
    """The race the stress test once hit: a room's first commit failed, the room emptied, a joiner's lookup went
    to the reader, and the commit that wrote the row again finished before the lookup answered "not there". A
    second room under the name would get a new id whose row is never written (its messages then fail)."""
    alice, bob = world.member("alice"), world.member("bob")
    world.line(alice, "/join dev")
    first = world.state.rooms["dev"]
    world.line(alice, "hello")
    world.state.unsaved_rooms["dev"] = first  # as the loop keeps a room whose commit failed
    world.line(alice, "/leave dev")
    assert "dev" not in world.state.rooms
    (stale,) = world.line(bob, "/join dev", answer_reads=False).reads  # handed to the reader after 0 commits
    del world.state.unsaved_rooms["dev"]  # the next commit wrote the row, before the lookup answered
    first.persisted = True
    world.state.rows_written_lately["dev"] = 1
    out = Outbox()
    world.answer(stale, out)
    assert "dev" not in world.state.rooms and "dev" not in bob.rooms
    (again,) = out.reads
    assert isinstance(again, RoomLookup) and again is not stale and bob.waiting == [again]
    world.rooms_in_db["dev"] = FoundRoom(StoredRoom(first.id, "dev", None, None, None, 1.0), [])
    world.state.rows_written_lately.clear()
    world.answer(again, Outbox())
    assert world.state.rooms["dev"].id == first.id and "dev" in bob.rooms
    assert world.problems() == []


def test_the_topic_of_a_room_nobody_is_in_is_read_from_the_database(world: World) -> None:
    world.rooms_in_db["ops"] = FoundRoom(StoredRoom(3, "ops", "On call: bob", "bob", 5.0, 1.0), [])
    alice = world.member("alice")
    out = world.line(alice, "/topic #ops")
    (topic,) = [e for e in events_for(out, alice) if not isinstance(e, Error)]
    assert topic.topic == "On call: bob" and "ops" not in world.state.rooms  # type: ignore[attr-defined]
    out = world.line(alice, "/topic #nowhere")
    (error,) = events_for(out, alice)
    assert isinstance(error, Error) and error.code is ErrorCode.NO_SUCH_ROOM and error.command == "topic"


def test_who_of_a_room_nobody_is_in_is_empty(world: World) -> None:
    alice = world.member("alice")
    (who,) = events_for(world.line(alice, "/who #empty"), alice)
    assert isinstance(who, Who) and who.members == []


def test_a_goodbye_for_cause_follows_the_echoes_of_what_was_accepted(world: World) -> None:
    alice = world.member("alice")
    out = world.line(alice, "hello")
    (message, _), = out.writes.messages
    world.service.end(alice, "Too many lines.", ErrorCode.FLOOD, "flood", out)
    kinds = [type(item).__name__ for to, item in out.deliveries if alice in to]
    assert kinds == ["ChatMessage", "Goodbye", "CloseAfterFlush"]
    message.state = DeliveryState.STORED
    assert alice.last_stored_id() == message.id
    goodbye = next(item for _, item in out.deliveries if isinstance(item, Goodbye))
    assert goodbye.code is ErrorCode.FLOOD and alice.gone


def test_nick_to_your_own_nick_changes_nothing_and_stores_nothing(world: World) -> None:
    alice = world.member("alice")
    out = world.line(alice, "/nick alice")
    assert not out.writes and out.deliveries == []
    out = world.line(alice, "/nick Alice")  # a new spelling is a change: shown and stored
    assert [u.nick for u in out.writes.users] == ["Alice"] and len(out.deliveries) == 1


def test_a_room_past_quiet_above_announces_no_joins_leaves_or_quits() -> None:
    world = World(quiet_above=2)
    alice, bob = world.member("alice"), world.member("bob")  # 2 members: announced
    carol = world.member()
    out = world.line(carol, "carol")  # the 3rd: the lobby is quiet now
    assert not any(isinstance(e, Join) for e in events_for(out, alice))
    joined = next(e for e in events_for(out, carol) if isinstance(e, Joined))
    assert joined.quiet and joined.count == 3 and joined.members == ["carol"]  # no ops here: only you
    dave = world.member("dave")
    world.line(alice, "/join dev")  # a small room: announced as ever
    bob_joins = world.line(bob, "/join dev")
    assert [type(e) for e in events_for(bob_joins, alice)] == [Join]
    assert not next(e for e in events_for(bob_joins, bob) if isinstance(e, Joined)).quiet
    out = world.line(carol, "/leave lobby")  # 4 members: only the leaver hears of it
    assert [to for to, e in out.deliveries if isinstance(e, Part)] == [(carol,)]
    out = world.line(bob, "/quit")  # heard in #dev (alice), not in the quiet lobby of 3 (dave)
    assert [to for to, e in out.deliveries if isinstance(e, Quit)] == [(alice,)]
    out = world.line(dave, "/who lobby")
    who = next(e for e in events_for(out, dave) if isinstance(e, Who))
    assert who.members == ["alice", "dave"]  # /who tells who is there now
    assert world.problems() == []


def test_quiet_above_zero_announces_every_join() -> None:
    world = World(quiet_above=0)
    first = world.member("m0")
    for i in range(1, 30):
        out = world.line(world.member(), f"m{i}")
        assert [type(e) for e in events_for(out, first)] == [Join]
