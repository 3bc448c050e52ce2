"""What clustered nodes keep in PostgreSQL (docs/CLUSTER.md): room events numbered per room, who holds which nick
on which node, who is in which room, and each node's heartbeat.

The writer (`ClusterWriter.write`, inside the batch's own transaction) locks each room its batch touches with
`UPDATE rooms SET seq = seq + n … RETURNING seq`, in room id order (two nodes never wait on each other in a
circle), takes message ids from the `message_ids` sequence while it holds the lock, writes the events and sends
`pg_notify('chat', 'room:seq')`, which PostgreSQL delivers at commit. So commit order is sequence order per room,
and a message's id grows with its room's order on every node. Whatever other nodes committed in a room before
this batch (a gap the node has not applied yet) is read in the same transaction, so the node delivers it first.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from chat.protocol.events import ChatMessage, MessageKind
from chat.protocol.text import sanitize
from chat.storage.records import EventRow, RoomEventRecord, StoredRoom, WriteBatch

log = logging.getLogger("chat.storage")

CHANNEL = "chat"  # the NOTIFY channel
LISTEN = "LISTEN chat"  # (a constant statement: SQL is never built from strings)
REAP_LOCK_KEY = 0x63686172  # "char": one reaper at a time across the cluster
FETCH_LIMIT = 1000  # room events (or inbox entries) read at once
PRUNE_LOCK_KEY = 0x63686173  # "chas": one pruner at a time across the cluster
PRUNE_BATCH = 10_000  # rows one pruning transaction deletes
REAPER = "*reaper"  # the node named by the quits a reaper writes: every node applies them, the reaper's too
PROVISIONAL = 1 << 50  # ids a clustered node gives rooms and messages until the database gives the real ones


def is_provisional(i: int) -> bool:
    return i >= PROVISIONAL


@dataclass(slots=True)
class ClusterCommit:
    """What a clustered batch learnt from the database, for the loop (chat.server.cluster)."""

    message_ids: dict[int, int] = field(default_factory=dict)  # provisional -> real
    room_ids: dict[int, int] = field(default_factory=dict)  # provisional -> real
    seqs: dict[int, int] = field(default_factory=dict)  # room id -> the last number this batch wrote
    gaps: list[EventRow] = field(default_factory=list)  # other nodes' events before this batch's, per room


class ClusterWriter:
    """The clustered half of the writer's transaction. Owned by the writer thread; remembers the real ids of the
    rooms it created (later batches may still name them by their provisional ids)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.room_ids: dict[int, int] = {}  # provisional -> real, of committed batches
        self.pending = ClusterCommit()  # the batch being written: its renumbering, kept when its commit fails

    def room_id(self, i: int | None) -> int | None:
        if i is None:
            return None
        return self.pending.room_ids.get(i) or self.room_ids.get(i, i)

    def committed(self) -> None:
        """The batch's transaction is committed: the rooms it made exist."""
        self.room_ids.update(self.pending.room_ids)

    def prepare(self, conn: Connection, batch: WriteBatch) -> ClusterCommit:
        """Rooms and ids first (before the rows that name them): returns the renumbering. The batch's records are
        changed in place to the real ids (the writer owns them while it commits)."""
        result = self.pending = ClusterCommit()
        for room in batch.rooms:
            real = self._insert_room(conn, room)
            if real != room.id:
                result.room_ids[room.id] = real
        batch.rooms = []
        # lock every room with events, in id order; ids and seqs come under the lock
        per_room: dict[int, list[RoomEventRecord]] = defaultdict(list)
        for e in batch.events:
            rid = self.room_id(e.room_id)
            assert rid is not None
            per_room[rid].append(e)
        starts: dict[int, int] = {}
        for rid in sorted(per_room):
            events = per_room[rid]
            last = conn.execute(text("UPDATE rooms SET seq = seq + :n WHERE id = :id RETURNING seq"),
                                {"n": len(events), "id": rid}).scalar_one()
            first = last - len(events) + 1
            starts[rid] = first
            result.seqs[rid] = last
            applied = events[0].applied
            if first - 1 > applied:  # others wrote meanwhile: read what this node has not applied, to go first
                result.gaps.extend(read_events(conn, rid, applied, first - 1))
        if batch.messages:
            count = len(batch.messages)
            ids = list(conn.execute(text("SELECT nextval('message_ids') FROM generate_series(1, :n)"),
                                    {"n": count}).scalars())
            renumbered = result.message_ids
            for (message, _room_id), real in zip(batch.messages, ids, strict=True):
                renumbered[message.id] = real
            for message, _room_id in batch.messages:
                message.id = renumbered[message.id]  # the loop reads it only after the commit
            batch.messages = [(m, self.room_id(rid)) for m, rid in batch.messages]
            for p in batch.private:
                p.message_id = renumbered.get(p.message_id, p.message_id)
        for t in batch.topics:
            t.room_id = self.room_id(t.room_id)  # type: ignore[assignment]
        for s in batch.settings:
            s.room_id = self.room_id(s.room_id)  # type: ignore[assignment]
        for r in batch.roles:
            r.room_id = self.room_id(r.room_id)  # type: ignore[assignment]
        now = datetime.now(UTC)
        rows = []
        members_in: list[dict[str, Any]] = []
        members_out: list[dict[str, Any]] = []
        renames: list[dict[str, Any]] = []
        kicked: list[dict[str, Any]] = []
        for rid, events in per_room.items():
            seq = starts[rid]
            for e in events:
                rows.append({"room_id": rid, "seq": seq, "node": self.node, "kind": e.kind, "nick": e.nick,
                             "message_id": e.message.id if e.message is not None else None,
                             "data": json.dumps(e.data) if e.data else None, "created_at": now})
                seq += 1
                key = e.nick.lower()
                if e.kind == "join":
                    members_in.append({"room_id": rid, "nick_key": key, "nick": e.nick, "node": self.node})
                elif e.kind in ("part", "quit"):
                    members_out.append({"room_id": rid, "nick_key": key, "node": self.node})
                elif e.kind == "kick":  # of a member of any node: the kicker's node writes its leaving
                    kicked.append({"room_id": rid, "nick_key": key})
                elif e.kind == "nick" and e.data:
                    new = str(e.data["new"])
                    renames.append({"room_id": rid, "old": key, "key": new.lower(), "nick": new, "node": self.node})
        if rows:
            conn.execute(text("INSERT INTO room_events (room_id, seq, node, kind, nick, message_id, data, created_at) "
                              "VALUES (:room_id, :seq, :node, :kind, :nick, :message_id, :data, :created_at)"), rows)
        if members_out:
            conn.execute(text("DELETE FROM room_members WHERE room_id = :room_id AND nick_key = :nick_key "
                              "AND node = :node"), members_out)
        if kicked:
            conn.execute(text("DELETE FROM room_members WHERE room_id = :room_id AND nick_key = :nick_key"), kicked)
        if renames:
            conn.execute(text("UPDATE room_members SET nick_key = :key, nick = :nick WHERE room_id = :room_id "
                              "AND nick_key = :old AND node = :node"), renames)
        if members_in:
            conn.execute(text("INSERT INTO room_members (room_id, nick_key, nick, node) VALUES "
                              "(:room_id, :nick_key, :nick, :node) ON CONFLICT (room_id, nick_key) DO UPDATE "
                              "SET nick = excluded.nick, node = excluded.node"), members_in)
        if batch.presence_gone:
            conn.execute(text("DELETE FROM presence WHERE nick_key = :key AND node = :node AND conn = :conn"),
                         [{"key": k, "node": self.node, "conn": c} for k, c in batch.presence_gone])
        if batch.presence_held:  # after the deletes: a nick quit and taken again here ends up with its new holder
            conn.execute(text("INSERT INTO presence (nick_key, nick, node, conn, since) VALUES (:key, :nick, :node, "
                              ":conn, now()) ON CONFLICT (nick_key) DO UPDATE SET nick = excluded.nick, "
                              "conn = excluded.conn WHERE presence.node = excluded.node"),
                         [{"key": k, "nick": n, "node": self.node, "conn": c} for k, n, c in batch.presence_held])
        if batch.private_notify:
            self._to_inboxes(conn, batch.private_notify, now)
        for rid, last in result.seqs.items():  # sent by PostgreSQL at commit, not before
            conn.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": f"{rid}:{last}"})
        if batch.rejoin:  # last: whatever this node wrote before is announced gone with the rest
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": REAP_LOCK_KEY})
            reap_node(conn, self.node, by=self.node, reason="its server lost touch with the others")
            conn.execute(text("INSERT INTO nodes (name, heartbeat, started_at) VALUES (:n, now(), now())"),
                         {"n": self.node})
        return result

    @staticmethod
    def _to_inboxes(conn: Connection, private: list[tuple[str, ChatMessage]], now: datetime) -> None:
        """Private messages for nicks held on other nodes: into each node's inbox, numbered under its row's lock
        (after the rooms' locks, nodes in name order: writers never wait on each other in a circle). A node that
        is gone (reaped) has no row: its message is stored, and delivered to nobody live."""
        per_node: dict[str, list[ChatMessage]] = defaultdict(list)
        for node, message in private:
            per_node[node].append(message)
        for node in sorted(per_node):
            messages = per_node[node]
            last = conn.execute(text("UPDATE nodes SET inbox_seq = inbox_seq + :n WHERE name = :node "
                                     "RETURNING inbox_seq"), {"n": len(messages), "node": node}).scalar()
            if last is None:
                continue
            first = last - len(messages) + 1
            conn.execute(text("INSERT INTO node_inbox (node, seq, message_id, created_at) VALUES (:node, :seq, :m, "
                              ":at)"), [{"node": node, "seq": first + i, "m": m.id, "at": now}
                                        for i, m in enumerate(messages)])
            conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": f"pm:{node}:{last}"})

    def _insert_room(self, conn: Connection, room: StoredRoom) -> int:
        """The room's real id: the one another node made under its name, else a new one from the sequence."""
        row = {"name": room.name, "name_key": room.name.lower(), "topic": room.topic,
               "topic_set_by": room.topic_set_by,
               "topic_set_at": datetime.fromtimestamp(room.topic_set_at, UTC) if room.topic_set_at else None,
               "created_at": datetime.fromtimestamp(room.created_at, UTC),
               "owner_id": room.settings.owner_id, "owner_nick": room.settings.owner_nick,
               "invite_only": room.settings.invite_only, "moderated": room.settings.moderated,
               "topic_ops_only": room.settings.topic_ops_only, "join_key": room.settings.key,
               "member_limit": room.settings.limit, "secret": room.settings.secret,
               "no_external": room.settings.no_external}
        if not is_provisional(room.id):  # a room read from the database, written again after a failed commit
            return room.id
        conn.execute(text("INSERT INTO rooms (name, name_key, topic, topic_set_by, topic_set_at, created_at, owner_id, "
                          "owner_nick, invite_only, moderated, topic_ops_only, join_key, member_limit, secret, "
                          "no_external) VALUES (:name, :name_key, :topic, :topic_set_by, :topic_set_at, :created_at, "
                          ":owner_id, :owner_nick, :invite_only, :moderated, :topic_ops_only, :join_key, "
                          ":member_limit, :secret, :no_external) ON CONFLICT (name_key) DO NOTHING"), row)
        return int(conn.execute(text("SELECT id FROM rooms WHERE name_key = :k"), {"k": row["name_key"]}).scalar_one())


def read_events(conn: Connection, room_id: int, after: int, up_to: int | None = None,
                limit: int = FETCH_LIMIT) -> list[EventRow]:
    """A room's events after number `after` (up to `up_to`), in order, with their messages."""
    rows = conn.execute(text(
        "SELECT e.room_id, e.seq, e.node, e.kind, e.nick, e.data, e.created_at, m.id AS mid, m.kind AS mkind, "
        "m.sender, m.text, m.created_at AS mtime, r.name AS room_name FROM room_events e "
        "JOIN rooms r ON r.id = e.room_id LEFT JOIN messages m ON m.id = e.message_id "
        "WHERE e.room_id = :room AND e.seq > :after AND (CAST(:up_to AS BIGINT) IS NULL OR e.seq <= :up_to) "
        "ORDER BY e.seq LIMIT :limit"), {"room": room_id, "after": after, "up_to": up_to, "limit": limit})
    events = []
    for r in rows:
        message = None
        if r.mid is not None:
            message = ChatMessage(r.mid, MessageKind(r.mkind), r.sender, sanitize(r.text), r.mtime.timestamp(),
                                  room=r.room_name)
        data = json.loads(r.data) if r.data else {}
        events.append(EventRow(r.room_id, r.seq, r.node, r.kind, r.nick, data, message, r.created_at.timestamp()))
    return events


def fetch_events(engine: Engine, room_id: int, after: int) -> list[EventRow]:
    with engine.connect() as conn:
        return read_events(conn, room_id, after)


def fetch_inbox(engine: Engine, node: str, after: int, limit: int = FETCH_LIMIT) -> list[tuple[int, ChatMessage]]:
    """The private messages in `node`'s inbox after number `after`, in order, with their numbers."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT i.seq, m.id, m.kind, m.sender, m.recipient, m.text, m.created_at FROM node_inbox i JOIN messages m "
            "ON m.id = i.message_id WHERE i.node = :node AND i.seq > :after ORDER BY i.seq LIMIT :limit"),
            {"node": node, "after": after, "limit": limit})
        return [(r.seq, ChatMessage(r.id, MessageKind(r.kind), r.sender, sanitize(r.text), r.created_at.timestamp(),
                                    to=r.recipient)) for r in rows]


# ------------------------------------------------------------------------------------------- nodes

def prepare_node(engine: Engine, node: str) -> None:
    """A node starting: the sequences continue past ids a single server wrote, what an earlier run of this node
    left (its users, their rooms) is announced gone and removed, and its heartbeat row is written."""
    with engine.begin() as conn:
        conn.execute(text("SELECT setval('message_ids', GREATEST((SELECT COALESCE(MAX(id), 0) FROM messages), "
                          "(SELECT last_value FROM message_ids)) + 1, false)"))
        conn.execute(text("SELECT setval(pg_get_serial_sequence('rooms', 'id'), GREATEST((SELECT COALESCE(MAX(id), "
                          "0) FROM rooms), 1))"))
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": REAP_LOCK_KEY})
        reap_node(conn, node, by=node, reason="the server restarted")
        conn.execute(text("INSERT INTO nodes (name, heartbeat, started_at) VALUES (:n, now(), now())"), {"n": node})


def heartbeat(engine: Engine, node: str, caught_up: float) -> bool:
    """The node is alive, and has applied everything written before `caught_up` (a time). False: its row is
    gone, the other nodes reaped it (chat.server.cluster: it starts clean)."""
    with engine.begin() as conn:
        return conn.execute(text("UPDATE nodes SET heartbeat = now(), caught_up = :c WHERE name = :n"),
                            {"n": node, "c": datetime.fromtimestamp(caught_up, UTC)}).rowcount > 0


def prune(engine: Engine, min_age: float, batch: int = PRUNE_BATCH) -> int:
    """Delete the room events and inbox entries older than `min_age` seconds and than every node's caught-up
    mark (what no live node still has to apply; a node's own start counts as its mark until it writes one), a
    batch at a time; one pruner at a time across the cluster. Returns how many rows went."""
    deleted = 0
    for statement in _PRUNE:
        while True:
            with engine.begin() as conn:
                if not conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": PRUNE_LOCK_KEY}).scalar():
                    return deleted
                n = conn.execute(statement, {"age": min_age, "batch": batch}).rowcount
            deleted += n
            if n < batch:
                break
    return deleted


# what no node needs any more: older than the minimum age and than every node's caught-up mark (a node's start
# until it writes one); a batch at a time (literal statements: SQL is never built from strings)
_PRUNE = [
    text("DELETE FROM room_events WHERE ctid = ANY(ARRAY(SELECT ctid FROM room_events WHERE created_at < LEAST(now() "
         "- make_interval(secs => :age), (SELECT min(COALESCE(caught_up, started_at)) FROM nodes)) LIMIT :batch))"),
    text("DELETE FROM node_inbox WHERE ctid = ANY(ARRAY(SELECT ctid FROM node_inbox WHERE created_at < LEAST(now() "
         "- make_interval(secs => :age), (SELECT min(COALESCE(caught_up, started_at)) FROM nodes)) LIMIT :batch))"),
]


def reap_dead(engine: Engine, node: str, timeout: float) -> list[str]:
    """Announce the users of every node silent for `timeout` seconds gone, and remove them; one reaper at a time
    (the others skip). Returns the nodes reaped."""
    with engine.begin() as conn:
        if not conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": REAP_LOCK_KEY}).scalar():
            return []
        # (no row lock here: reap_node locks the rooms first and the node's row last, as writers do)
        dead = list(conn.execute(text("SELECT name FROM nodes WHERE name <> :me AND heartbeat < now() - "
                                      "make_interval(secs => :t)"), {"me": node, "t": timeout}).scalars())
        for name in dead:
            reap_node(conn, name, by=node, reason=f"its server ({name}) stopped answering")
        return dead


def reap_node(conn: Connection, dead: str, *, by: str, reason: str) -> None:
    """In the caller's transaction: a quit event for each room member `dead` held, then its rows go."""
    rows = list(conn.execute(text("SELECT room_id, nick FROM room_members WHERE node = :n ORDER BY room_id, nick_key"),
                             {"n": dead}))
    per_room: dict[int, list[str]] = defaultdict(list)
    for r in rows:
        per_room[r.room_id].append(r.nick)
    now = datetime.now(UTC)
    for rid in sorted(per_room):
        nicks = per_room[rid]
        last = conn.execute(text("UPDATE rooms SET seq = seq + :n WHERE id = :id RETURNING seq"),
                            {"n": len(nicks), "id": rid}).scalar_one()
        seq = last - len(nicks) + 1
        conn.execute(text("INSERT INTO room_events (room_id, seq, node, kind, nick, data, created_at) VALUES "
                          "(:room, :seq, :node, 'quit', :nick, :data, :at)"),
                     [{"room": rid, "seq": seq + i, "node": REAPER, "nick": nick, "at": now,
                       "data": json.dumps({"reason": reason, "origin": f"reap:{dead}:{nick.lower()}"})}
                      for i, nick in enumerate(nicks)])
        conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": f"{rid}:{last}"})
    conn.execute(text("DELETE FROM room_members WHERE node = :n"), {"n": dead})
    conn.execute(text("DELETE FROM presence WHERE node = :n"), {"n": dead})
    conn.execute(text("DELETE FROM node_inbox WHERE node = :n"), {"n": dead})
    conn.execute(text("DELETE FROM nodes WHERE name = :n"), {"n": dead})
    if rows:
        log.warning("cluster: %s reaped node %s: %d room memberships announced gone", by, dead, len(rows),
                    extra={"event": "node_reaped", "node": dead})


def presence_of(engine: Engine, key: str) -> tuple[str, str] | None:
    """The node and the nick as spelled of whoever holds the nick `key` in the cluster, or None."""
    with engine.connect() as conn:
        row = conn.execute(text("SELECT node, nick FROM presence WHERE nick_key = :k"), {"k": key}).first()
        return (row.node, row.nick) if row is not None else None


def claim_presence(engine: Engine, key: str, nick: str, node: str, conn_id: int) -> bool:
    """Take `nick` across the cluster for member `conn_id` of `node`; False if another node's member holds it. A
    row of this node's own is left as it is: the node decides among its members (chat.server.state), and the
    writer makes the row name the member that took the nick (`presence_held`)."""
    with engine.begin() as conn:
        row = conn.execute(text("INSERT INTO presence (nick_key, nick, node, conn, since) VALUES (:k, :n, :node, "
                                ":c, now()) ON CONFLICT (nick_key) DO NOTHING RETURNING conn"),
                           {"k": key, "n": nick, "node": node, "c": conn_id}).first()
        if row is not None:
            return True
        holder = conn.execute(text("SELECT node FROM presence WHERE nick_key = :k"), {"k": key}).scalar()
        return holder is None or holder == node


# ------------------------------------------------------------------------------------------- cluster-wide views

@dataclass(slots=True)
class ListedRoom:
    """A room of /rooms across the cluster: its members counted on every node."""

    name: str
    key: str
    members: int
    topic: str | None


def busiest_rooms(engine: Engine, limit: int, seen: list[int], hidden: list[int], every: bool
                  ) -> tuple[list[ListedRoom], int]:
    """The `limit` rooms with the most members on all nodes (`room_members`), and how many rooms have members.
    Hidden rooms (invite-only or secret) are left out unless their id is in `seen` (or `every`: a server admin
    asks); rooms whose id is in `hidden` are left out (hidden in the asking node's memory, and not the asker's)."""
    params = {"every": every, "seen": seen, "hidden": hidden, "limit": limit}
    with engine.connect() as conn:
        rows = conn.execute(_BUSIEST, params)
        listed = [ListedRoom(r.name, r.name_key, r.n, sanitize(r.topic) if r.topic else None) for r in rows]
        total = conn.execute(_WITH_MEMBERS, params).scalar_one()
    return listed, int(total)


# (literal statements: SQL is never built from strings; the two share their WHERE word for word)
_BUSIEST = text("SELECT r.name, r.name_key, r.topic, count(*) AS n FROM room_members m JOIN rooms r ON "
                "r.id = m.room_id WHERE (CAST(:every AS BOOLEAN) OR NOT (r.invite_only OR r.secret) "
                "OR r.id = ANY(:seen)) AND NOT r.id = ANY(:hidden) GROUP BY r.id ORDER BY n DESC, r.name_key "
                "LIMIT :limit")
_WITH_MEMBERS = text("SELECT count(DISTINCT m.room_id) FROM room_members m JOIN rooms r ON r.id = m.room_id "
                     "WHERE (CAST(:every AS BOOLEAN) OR NOT (r.invite_only OR r.secret) OR r.id = ANY(:seen)) "
                     "AND NOT r.id = ANY(:hidden)")


@dataclass(slots=True)
class RemoteRoom:
    """A room a member of another node is in, as /whois shows it."""

    id: int
    name: str
    key: str
    hidden: bool  # invite-only or secret
    op: bool  # its owner or a stored op (another node's session ops are that node's own)
    voiced: bool


@dataclass(slots=True)
class RemoteWhois:
    """A nick held on another node: where, since when, and its rooms."""

    nick: str
    node: str
    since: float
    rooms: list[RemoteRoom]


def whois_remote(engine: Engine, key: str, node: str, account_id: int | None) -> RemoteWhois | None:
    """The holder of nick `key` if it is on another node than `node`, with its rooms (and whether it is an op or
    voiced in each, for its account `account_id`)."""
    with engine.connect() as conn:
        holder = conn.execute(text("SELECT node, nick, since FROM presence WHERE nick_key = :k"), {"k": key}).first()
        if holder is None or holder.node == node:
            return None
        rows = conn.execute(text(
            "SELECT r.id, r.name, r.name_key, r.invite_only OR r.secret AS hidden, "
            "(r.owner_id IS NOT NULL AND r.owner_id = :a) OR EXISTS (SELECT 1 FROM room_roles o WHERE "
            "o.room_id = r.id AND o.role = 'op' AND o.account_id = :a) AS op, EXISTS (SELECT 1 FROM room_roles v "
            "WHERE v.room_id = r.id AND v.role = 'voice' AND v.account_id = :a) AS voiced "
            "FROM room_members m JOIN rooms r ON r.id = m.room_id WHERE m.nick_key = :k ORDER BY r.name_key"),
            {"k": key, "a": account_id})
        rooms = [RemoteRoom(r.id, r.name, r.name_key, bool(r.hidden), bool(r.op), bool(r.voiced)) for r in rows]
    return RemoteWhois(holder.nick, holder.node, holder.since.timestamp(), rooms)
