"""Room moderation in the services alone (harness.World: no sockets, no database): who owns a new room, what a
join is refused and what that leaves in memory, what is written, and the state's own consistency checks.
Logins themselves (real hashing, real database) are tested end to end in test_accounts.py: here members are
given an account directly."""

from __future__ import annotations

from chat.protocol.errors import ErrorCode
from chat.protocol.events import Error, Joined, Kick, Mode
from chat.server.member import Member
from chat.storage.records import (
    FoundRoom,
    RoleChange,
    RoomSettings,
    SettingsChange,
    StoredAccount,
    StoredRole,
    StoredRoom,
    WriteBatch,
)
from harness import World


def logged_in(world: World, nick: str, account_id: int, admin: bool = False) -> Member:
    m = world.member()
    m.account = StoredAccount(account_id, nick, nick.lower(), 1.0, admin=admin)
    world.state.logged_in[nick.lower()] = m
    world.line(m, nick)
    return m


def errors(out: object, m: Member) -> list[ErrorCode]:
    return [e.code for to, e in out.deliveries if m in to and isinstance(e, Error)]  # type: ignore[attr-defined]


def test_a_logged_in_creator_owns_the_room_a_guest_does_not_and_nobody_owns_the_lobby() -> None:
    world = World()
    alice, guest = logged_in(world, "alice", 7), world.member("guest")
    world.line(alice, "/join dev")
    world.line(guest, "/join hangout")
    rooms = world.state.rooms
    assert rooms["dev"].stored().settings == RoomSettings(owner_id=7, owner_nick="alice")
    assert rooms["hangout"].settings.owner_id is None
    assert rooms["lobby"].settings.owner_id is None  # alice came first, but the lobby is the server's
    assert world.problems() == []


def test_a_refused_joiner_leaves_a_room_read_back_out_of_memory() -> None:
    world = World()
    secret = StoredRoom(5, "secret", None, None, None, 1.0, RoomSettings(owner_id=1, owner_nick="owner",
                                                                           invite_only=True))
    world.rooms_in_db["secret"] = FoundRoom(secret, [], [StoredRole("ban", "troll", "troll", None, "owner", 1.0)])
    bob, troll = world.member("bob"), world.member("troll")
    assert errors(world.line(bob, "/join secret"), bob) == [ErrorCode.INVITE_ONLY]
    assert errors(world.line(troll, "/join secret"), troll) == [ErrorCode.BANNED]
    assert "secret" not in world.state.rooms and "secret" not in world.state.hidden
    assert world.problems() == []


def test_kick_and_ban_change_the_room_and_write_the_ban() -> None:
    world = World()
    owner, troll = logged_in(world, "owner", 1), world.member("troll")
    world.line(owner, "/join dev")
    world.line(troll, "/join dev")
    dev = world.state.rooms["dev"]
    out = world.line(owner, "/ban dev troll")
    assert [type(e) for to, e in out.deliveries if troll in to][:2] == [Mode, Kick]
    assert troll not in dev.members and "dev" not in troll.rooms
    assert out.writes.roles == [RoleChange(dev.id, "ban", "troll", "troll", None, "owner", world.now, True)]
    assert errors(world.line(troll, "/join dev"), troll) == [ErrorCode.BANNED]
    out = world.line(owner, "/mode dev +im")
    assert out.writes.settings == [SettingsChange(dev.id, RoomSettings(owner_id=1, owner_nick="owner",
                                                                      invite_only=True, moderated=True))]
    assert "dev" in world.state.hidden
    assert world.problems() == []


def test_admins_moderate_rooms_they_are_not_in_and_ops_cannot_touch_them() -> None:
    world = World()
    owner, boss, op = logged_in(world, "owner", 1), logged_in(world, "boss", 2, admin=True), logged_in(world, "op", 3)
    world.line(owner, "/join dev")
    world.line(op, "/join dev")
    world.line(owner, "/op dev op")
    assert errors(world.line(op, "/kick dev owner"), op) == [ErrorCode.PROTECTED]
    world.line(boss, "/join dev")
    assert errors(world.line(op, "/ban dev boss"), op) == [ErrorCode.PROTECTED]
    world.line(boss, "/leave dev")
    out = world.line(boss, "/kick dev owner enough")  # from outside the room
    assert any(isinstance(e, Kick) and e.nick == "owner" for _, e in out.deliveries)
    joined = next(e for to, e in world.line(owner, "/join dev").deliveries if isinstance(e, Joined))
    assert joined.ops == ["op", "owner"]
    assert world.problems() == []


def test_a_failed_commit_keeps_the_rooms_settings_and_roles_for_the_next() -> None:
    failed = WriteBatch(settings=[SettingsChange(1, RoomSettings(invite_only=True))],
                        roles=[RoleChange(1, "ban", "x", "x", None, "o", 1.0, True)])
    carried = WriteBatch()
    carried.keep_lasting(failed)
    later = WriteBatch(roles=[RoleChange(1, "ban", "x", "x", None, "o", 2.0, False)])
    later.put_first(carried)
    assert [r.granted for r in later.roles] == [True, False]  # the newer change wins: it comes last
    assert later.settings == failed.settings


def test_the_new_modes_are_written_and_a_secret_room_is_marked_hidden() -> None:
    world = World()
    owner, guest = logged_in(world, "owner", 1), world.member("guest")
    world.line(owner, "/join dev")
    dev = world.state.rooms["dev"]
    out = world.line(owner, "/mode dev +sl-n 3")
    assert [(e.mode, e.target) for _, e in out.deliveries if isinstance(e, Mode)] == [
        ("+s", None), ("+l", "3"), ("-n", None)]
    assert out.writes.settings == [SettingsChange(dev.id, RoomSettings(owner_id=1, owner_nick="owner", limit=3,
                                                                      secret=True, no_external=False))]
    assert "dev" in world.state.hidden and world.problems() == []
    assert world.line(owner, "/mode dev +l 3").writes.settings == []  # so already: nothing to write
    world.line(owner, "/mode dev -s")
    assert "dev" not in world.state.hidden and world.problems() == []
    world.line(guest, "/join hangout")  # a session op's limit, in a room nobody owns: for the session only
    out = world.line(guest, "/mode hangout +l 1")
    assert world.state.rooms["hangout"].settings.limit == 1 and out.writes.settings == []
    assert errors(world.line(owner, "/join hangout"), owner) == [ErrorCode.ROOM_FULL]


def test_a_room_read_back_is_full_by_its_stored_limit_and_its_history_stays_readable() -> None:
    world = World()
    full = StoredRoom(5, "full", None, None, None, 1.0, RoomSettings(owner_id=1, owner_nick="owner", limit=1))
    world.rooms_in_db["full"] = FoundRoom(full, [])
    first, second = world.member("first"), world.member("second")
    assert errors(world.line(first, "/join full"), first) == []
    assert errors(world.line(second, "/join full"), second) == [ErrorCode.ROOM_FULL]
    assert errors(world.line(second, "/history full"), second) == []
    assert world.problems() == []
