#!/usr/bin/env python3
"""The path of one chat message through the server, stage by stage, in microseconds of CPU per message.

    python benchmarks/path_micro.py [--members 10] [--messages 20000] [--batch 32] [--reps 5]

The same objects the event loop and the writer thread use (LineFramer, NativeCodec, ChatService, Outbox,
ChatStore on a fresh SQLite file, Deliverer, real sockets from a socketpair per member), driven in one thread
without an event loop, so each stage is timed alone with the thread's own CPU clock (`time.thread_time_ns`): what
other programs do on the machine hardly moves these figures, unlike a wall-clock throughput run. A room of
`--members` members (one sends, all receive: the small-room case of 10 x 50,000), messages handled in batches of
`--batch` (one commit each, as the loop's group commit under a burst). Prints one JSON object: per stage the
CPU microseconds per message of the median batch (the median over reps of that), and their total.

Stages: `framing` (bytes to lines), `parse` (a line to a pydantic command), `service` (the command to an outbox:
a message id, the room's ring, the delivery), `insert` (the writer's commit of the batch, SQLite's own work
included, per message), `render` (the event to text bytes, once per codec key), `queue` (the rendered bytes onto
every member's output queue), `send` (one send() per member per batch, what the loop's flush does).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--messages", type=int, default=20_000)  # a multiple of --batch
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    per_rep = [run_once(args.members, args.messages, args.batch) for _ in range(args.reps)]
    stages = list(per_rep[0])
    result = {s: round(statistics.median(r[s] for r in per_rep), 3) for s in stages}
    result["total"] = round(sum(result[s] for s in stages), 3)
    print(json.dumps({"members": args.members, "messages": args.messages, "batch": args.batch, "reps": args.reps,
                      "us_per_message": result}))


def run_once(members: int, messages: int, batch: int) -> dict[str, float]:
    from chat.protocol.framing import LineFramer
    from chat.protocol.native import NativeCodec
    from chat.server.config import ServerConfig
    from chat.server.connection import Connection
    from chat.server.delivery import Deliverer
    from chat.server.outbox import Outbox
    from chat.server.reads import NickLookup, RoomLookup
    from chat.server.service import ChatService
    from chat.server.state import ChatState
    from chat.server.transport import SocketTransport
    from chat.storage.database import make_engine, upgrade
    from chat.storage.repository import ChatStore

    # per stage, the CPU time of each batch: the median batch is the figure (a batch the machine interrupted, or
    # that met a WAL checkpoint, does not move it)
    cpu: dict[str, list[int]] = {s: [] for s in ("framing", "parse", "service", "insert", "render", "queue", "send")}

    @contextlib.contextmanager
    def stage(name: str) -> Iterator[None]:
        t0 = time.thread_time_ns()
        yield
        cpu[name].append(time.thread_time_ns() - t0)

    config = ServerConfig(port=0, db=":memory:", rate=0)
    state = ChatState(config.backlog)
    service = ChatService(state, config, time.time)
    folder = tempfile.TemporaryDirectory()
    engine = make_engine(str(Path(folder.name) / "path.sqlite"))
    upgrade(engine)
    store = ChatStore(engine)
    deliverer = Deliverer(config.sendq, lambda c: None)

    pairs = [socket.socketpair() for _ in range(members)]
    for ours, theirs in pairs:
        ours.setblocking(False)
        theirs.setblocking(False)
        for s in (ours, theirs):  # room for a whole batch: the benchmark never waits on a reader
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    conns = [Connection(i + 1, SocketTransport(ours), NativeCodec(config.max_line), "bench", "127.0.0.1", "bench",
                        "native", config.burst, time.monotonic()) for i, (ours, _theirs) in enumerate(pairs)]

    def drain() -> None:
        for _ours, theirs in pairs:
            try:
                while theirs.recv(1 << 20):
                    pass
            except BlockingIOError:
                pass

    def setup_line(c: Connection, line: str) -> None:
        out = Outbox()
        for command in c.codec.decode(line):
            service.handle(c.member, command, out)  # type: ignore[arg-type]
        while out.reads or out.early_reads:
            read = (out.early_reads or out.reads).pop(0)
            for m in read.members if isinstance(read, RoomLookup) else [read.member]:  # type: ignore[attr-defined]
                if read in m.waiting:
                    m.waiting.remove(read)
            if isinstance(read, RoomLookup):
                service.room_found(read, out)
            elif isinstance(read, NickLookup):
                service.account_read(read, out)
        out.writes.rooms = [r.stored() for r in out.new_rooms.values()]  # as the loop's _submit does
        if out.writes:
            store.write(out.writes)
        for room in out.new_rooms.values():
            room.persisted = True
        for message, _room in out.writes.messages:
            message.state = message.state.STORED
        deliverer.deliver(out)

    for i, c in enumerate(conns):
        setup_line(c, f"/nick bench{i}")
        setup_line(c, "/join bench")
    for c in conns:
        c.out.clear()
        c.out_bytes = 0
    deliverer.dirty.clear()
    drain()

    sender = conns[0]
    framer = LineFramer(config.max_line)
    from chat.protocol.events import DeliveryState
    from chat.protocol.render import render_text

    for start in range(0, messages, batch):
        data = b"".join(f"BENCH:0:{i}:{i * 7919}\n".encode() for i in range(start, min(messages, start + batch)))
        with stage("framing"):
            lines = framer.feed(data)
        with stage("parse"):
            commands = [c for line in lines for c in sender.codec.decode(line)]  # type: ignore[arg-type]
        out = Outbox()
        with stage("service"):
            for command in commands:
                service.handle(sender.member, command, out)  # type: ignore[arg-type]
        out.writes.rooms = [r.stored() for r in out.new_rooms.values()]  # the room's row, with its first message
        for room in out.new_rooms.values():
            room.persisted = True
        with stage("insert"):
            store.write(out.writes)
        for message, _room in out.writes.messages:
            message.state = DeliveryState.STORED
        # the deliverer renders a run once per key and queues it for every member: timed apart here
        events = [item for _to, item in out.deliveries]
        with stage("render"):
            chunk = "".join([render_text(e) for e in events]).encode()  # type: ignore[arg-type]
        with stage("queue"):
            for c in conns:
                c.out.append(chunk)
                c.out_bytes += len(chunk)
                deliverer.dirty[c] = None
        with stage("send"):
            for c in list(deliverer.dirty):
                c.transport.send(b"".join(c.out))
                c.out.clear()
                c.out_bytes = 0
            deliverer.dirty.clear()
        drain()

    for ours, theirs in pairs:
        ours.close()
        theirs.close()
    getattr(store, "close", lambda: None)()  # (a ChatStore before the fast path had none: for comparisons)
    engine.dispose()
    folder.cleanup()
    return {stage: statistics.median(samples) / 1000 / batch for stage, samples in cpu.items()}


if __name__ == "__main__":
    main()
