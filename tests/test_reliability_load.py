"""Load: 2,000 simultaneous clients on one `chat serve`, and join/quit storms whose cost grows linearly with the
room. The clients are driven from one thread (harness.Swarm); the server is a real process on its own core."""

from __future__ import annotations

import re
import time

from harness import (
    ServeProcess,
    Swarm,
    SwarmClient,
    cpu_seconds,
    log_problems,
    peak_rss_bytes,
    record_figures,
    scale,
    soft_open_file_limit,
    thread_cpu_seconds,
)

_JOINED = re.compile(r"^\[#(\S+)\] \*\*\* You joined #\S+ \((\d+) members?\)")
_NOTICE = re.compile(r"^\[#(\S+)\] \*\*\* \S+ (joined|left)$|^\*\*\* \S+ quit")


class Notices:
    """Counts join/part/quit notices per client instead of keeping them: 2,000 clients joining one room make
    two million of them."""

    def __init__(self) -> None:
        self.count: dict[tuple[str, str], int] = {}

    def keeper(self, name: str):  # type: ignore[no-untyped-def]
        def keep(line: str) -> bool:
            m = _NOTICE.match(line)
            if m is None:
                return True
            key = (name, f"{m.group(1)} {m.group(2)}" if m.group(1) else "quit")
            self.count[key] = self.count.get(key, 0) + 1
            return False

        return keep


def _connect(swarm: Swarm, notices: Notices, count: int, prefix: str) -> list[SwarmClient]:
    clients = swarm.connect(count, prefix=prefix)
    for c in clients:
        c.keep = notices.keeper(c.name)
    return clients


def test_two_thousand_clients_connect_join_chat_and_leave(tmp_path) -> None:  # type: ignore[no-untyped-def]
    n, rooms, said = scale(2000, 5000), 20, 2
    db = str(tmp_path / "chat.sqlite")
    with soft_open_file_limit(1024):  # fewer than the clients: the server must raise its own limit
        # every join and quit announced (--quiet-above 0): what is measured is the announcement path at its largest
        proc = ServeProcess(db, "--max-clients", str(n + 10), "--quiet-above", "0")
    swarm = Swarm(proc.host, proc.port)
    notices = Notices()
    phases: dict[str, float] = {}
    try:
        start = time.monotonic()
        clients = _connect(swarm, notices, n, "c")
        swarm.expect_all(clients, "Welcome to chat", timeout=60)
        phases["connect_s"] = time.monotonic() - start

        start = time.monotonic()
        swarm.register(clients, [f"u{i}" for i in range(n)], timeout=120)  # all into #lobby: a join storm
        swarm.expect_all(clients, "You joined #lobby", timeout=120)
        phases["register_and_lobby_storm_s"] = time.monotonic() - start
        # everyone heard of everyone who joined after them: what they were told at their own join, plus notices
        swarm.run_until(lambda: all(_members_at_join(c, "lobby") - 1 + notices.count.get((c.name, "lobby joined"), 0)
                                    == n - 1 for c in clients), timeout=120, what="every lobby join notice")

        start = time.monotonic()
        for i, c in enumerate(clients):
            c.state["room"] = f"r{i % rooms}"
            c.send(f"/join {c.state['room']}")
        swarm.expect_all(clients, "You joined #r", timeout=120)
        for c in clients:
            c.send(*[f"{c.nick} says {k}" for k in range(said)])
        announcers = clients[:10]
        for c in announcers:
            c.send(f"/msg #lobby announcement from {c.nick}")
        swarm.sync(clients, "chatted", timeout=120)  # every line of every client has been handled...
        swarm.sync(clients, "delivered", timeout=120)  # ...and so everything it caused reached everyone
        phases["chat_s"] = time.monotonic() - start

        checked = _check_every_message_reached_everyone_it_should(clients, rooms, said, announcers)

        start = time.monotonic()
        for c in clients:
            c.send("/quit")
        swarm.run_until(lambda: all(c.closed for c in clients), timeout=120, what="everyone to be gone")
        phases["quit_storm_s"] = time.monotonic() - start
        assert all(c.lines[-1].startswith("*** Goodbye: You left the chat") for c in clients)
        probe = proc.client("probe")
        probe.send("/rooms")
        assert probe.expect("***   #lobby") == "***   #lobby (1 member)"  # only the probe is left
        peak = peak_rss_bytes(proc.proc.pid)
        cpu = cpu_seconds(proc.proc.pid)
        proc.terminate()
        assert not log_problems(proc.log)
    finally:
        swarm.close_all()
        proc.kill()
    record_figures("two_thousand_clients", clients_held=n, messages_checked=checked,
                   server_peak_rss_mb=round(peak / 2**20), server_cpu_s=round(cpu, 1),
                   **{k: round(v, 2) for k, v in phases.items()})


def _members_at_join(c: SwarmClient, room: str) -> int:
    for line in c.lines:
        m = _JOINED.match(line)
        if m and m.group(1) == room:
            return int(m.group(2))
    return 0


def _check_every_message_reached_everyone_it_should(clients: list[SwarmClient], rooms: int, said: int,
                                                    announcers: list[SwarmClient]) -> int:
    members: dict[str, list[str]] = {}
    for c in clients:
        members.setdefault(c.state["room"], []).append(c.nick)  # type: ignore[arg-type]
    announcements = {f"[#lobby] {a.nick}: announcement from {a.nick}" for a in announcers}
    checked = 0
    for c in clients:
        room = c.state["room"]
        expected = {f"[#{room}] {nick}: {nick} says {k}" for nick in members[room] for k in range(said)}
        got = [line for line in c.lines if line.startswith("[#") and "] *** " not in line]
        assert set(got) == expected | announcements, f"{c.nick} in #{room}: wrong messages"
        assert len(got) == len(expected) + len(announcements), f"{c.nick}: duplicates"
        checked += len(got)
    return checked


def test_join_and_quit_storms_cost_linear_work_in_the_room_size(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A join costs the server work for each member told (linear); nothing may cost more per member as the room
    grows. The event loop's CPU time per join and per quit is measured with rooms of 250 and 2,000 members."""
    small, large, storm = 250, 2000, 400
    proc = ServeProcess(str(tmp_path / "chat.sqlite"), "--lobby", "", "--rate", "0", "--quiet-above", "0",
                        "--max-clients", str(large + storm + 10))
    swarm = Swarm(proc.host, proc.port)
    notices = Notices()
    costs: dict[int, tuple[float, float]] = {}
    try:
        residents: list[SwarmClient] = []
        for size in (small, large):
            newcomers = _connect(swarm, notices, size - len(residents), f"res{size}-")
            swarm.register(newcomers, [c.name.replace("-", "_") for c in newcomers], timeout=60)
            for c in newcomers:
                c.send("/join big")
            swarm.expect_all(newcomers, "You joined #big", timeout=60)
            residents += newcomers
            costs[size] = _storm(proc, swarm, notices, residents, storm, f"s{size}_")
    finally:
        swarm.close_all()
        proc.kill()
    per_member = {size: (join / size * 1e6, quit / size * 1e6) for size, (join, quit) in costs.items()}
    record_figures("storms", storm_clients=storm, room_sizes=[small, large],
                   join_us_per_member={k: round(v[0], 2) for k, v in per_member.items()},
                   quit_us_per_member={k: round(v[1], 2) for k, v in per_member.items()})
    growth = large / small  # 8x the members: linear work costs 8x per join, quadratic 64x
    for what, i in (("join", 0), ("quit", 1)):
        ratio = costs[large][i] / max(costs[small][i], 1e-3)
        assert ratio < growth * 2.5, f"a {what} costs {ratio:.1f}x more in a room {growth:g}x larger"


def _storm(proc: ServeProcess, swarm: Swarm, notices: Notices, residents: list[SwarmClient], storm: int,
           prefix: str) -> tuple[float, float]:
    """`storm` clients join #big at once, then quit at once. Returns server CPU seconds per join, per quit."""
    joiners = _connect(swarm, notices, storm, prefix)
    swarm.register(joiners, [c.name for c in joiners], timeout=60)
    pid = proc.proc.pid
    # the residents' own join notices may still be queued (presence lines wait up to loop.PRESENCE_DELAY for the
    # connection's next send): a pong goes out after them, so once every resident has its pong they are counted
    swarm.sync(residents)
    before = {c.name: notices.count.get((c.name, "big joined"), 0) for c in residents}
    cpu = thread_cpu_seconds(pid)
    for c in joiners:
        c.send("/join big")
    swarm.run_until(lambda: all(notices.count.get((c.name, "big joined"), 0) - before[c.name] >= storm
                                for c in residents), timeout=90, what="every join notice")
    _told_once(notices, residents, "big joined", before, storm)
    join_cpu = thread_cpu_seconds(pid) - cpu
    before = {c.name: notices.count.get((c.name, "quit"), 0) for c in residents}
    cpu = thread_cpu_seconds(pid)
    for c in joiners:
        c.send("/quit")
    swarm.run_until(lambda: all(notices.count.get((c.name, "quit"), 0) - before[c.name] >= storm
                                for c in residents), timeout=90, what="every quit notice")
    _told_once(notices, residents, "quit", before, storm)
    quit_cpu = thread_cpu_seconds(pid) - cpu
    swarm.run_until(lambda: all(c.closed for c in joiners), what="the joiners to be gone")
    return join_cpu / storm, quit_cpu / storm


def _told_once(notices: Notices, residents: list[SwarmClient], kind: str, before: dict[str, int], storm: int) -> None:
    told = {c.name: notices.count.get((c.name, kind), 0) - before[c.name] for c in residents}
    extra = {name: n for name, n in told.items() if n != storm}
    assert not extra, f"{len(extra)} residents were told of more than {storm} '{kind}': {list(extra.items())[:5]}"
