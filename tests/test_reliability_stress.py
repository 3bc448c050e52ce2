"""Stress: many clients doing random things (join, leave, nick changes, messages, private messages, quits,
drops, garbage) from several threads at once, for a bounded time, under a watchdog.

At the end: the server never stopped answering (no deadlock), logged no error, and its state is consistent
with itself (every online nick has a live connection and the reverse; room members and each session's rooms
agree) and with what the clients were told (each one's nick and rooms).
"""

from __future__ import annotations

import faulthandler
import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable

from harness import LineClient, ServerThread, Swarm, SwarmClient, capture_logs, record_figures, scale

ROOMS = ["lobby", "r0", "r1", "r2", "r3", "r4"]
NICKS = [f"n{i}" for i in range(150)]  # few enough that nick changes collide now and then
TEXTS = ["hello", "ünïcödé ✓", "emoji 🎉🔥", "quotes ' \" `", "  spaced  ", "a" * 300, "\\x00 \\n"]


class Player:
    """One thread's clients: random commands, and what each client was told about itself."""

    def __init__(self, server: ServerThread, seed: int, clients: int, deadline: float) -> None:
        self.rng = random.Random(seed)
        self.swarm = Swarm(server.host, server.port)
        self.deadline = deadline
        self.target = clients
        self.ops: Counter[str] = Counter()
        self.error: BaseException | None = None
        self.live: list[SwarmClient] = []
        self.thread = threading.Thread(target=self._run, name=f"player-{seed}", daemon=True)

    def _run(self) -> None:
        try:
            while time.monotonic() < self.deadline:
                while len(self.live) < self.target:
                    self._new_client()
                self._act(self.rng.choice(self.live))
                self.swarm.pump(0)
                self._learn()
            self._finish()
        except BaseException as e:  # reported by the test
            self.error = e

    def _new_client(self) -> None:
        (c,) = self.swarm.connect(1, prefix=f"{self.thread.name}-")
        c.state.update(nick=None, rooms=set(), learned=0)
        c.send("/format json")
        if self.rng.random() < 0.9:  # some stay unnamed for a while
            c.send(self.rng.choice(NICKS))
        self.live.append(c)
        self.ops["connect"] += 1

    def _act(self, c: SwarmClient) -> None:
        rng = self.rng
        op = rng.choices(["say", "join", "leave", "nick", "msg", "look", "topic", "history", "quit", "drop",
                          "garbage", "register"], [30, 10, 8, 8, 8, 5, 3, 3, 3, 3, 4, 4])[0]
        self.ops[op] += 1
        if op == "say":
            c.send(rng.choice(TEXTS) if rng.random() < 0.7 else f"/msg #{rng.choice(ROOMS)} {rng.choice(TEXTS)}")
        elif op == "join":
            c.send(f"/join {rng.choice(ROOMS)}")
        elif op == "leave":
            c.send(f"/leave {rng.choice(ROOMS)}" if rng.random() < 0.7 else "/leave")
        elif op in ("nick", "register"):
            c.send(f"/nick {rng.choice(NICKS)}")
        elif op == "msg":
            c.send(f"/msg {rng.choice(NICKS)} {rng.choice(TEXTS)}")
        elif op == "look":
            c.send(rng.choice(["/who", "/rooms", f"/who {rng.choice(ROOMS)}", "/help", "/ping x"]))
        elif op == "topic":
            c.send(f"/topic #{rng.choice(ROOMS)} {rng.choice(TEXTS)}")
        elif op == "history":
            c.send(f"/history {rng.choice(ROOMS)} {rng.randint(1, 20)}")
        elif op == "quit":
            c.send("/quit bye")
            self.live.remove(c)  # the server closes it; its lines are drained by the swarm
        elif op == "drop":
            self.swarm.drop(c, reset=rng.random() < 0.5)  # half of them as a crashed program's socket goes
            self.live.remove(c)
        elif op == "garbage":
            c.send_raw(bytes(rng.randrange(256) for _ in range(rng.randint(1, 80))) + b"\n")

    def _learn(self) -> None:
        """What each live client was told about itself: its nick and its rooms."""
        for c in self.live:
            new, c.state["learned"] = c.lines[c.state["learned"]:], len(c.lines)
            for line in new:
                if not line.startswith("{"):
                    continue
                e = json.loads(line)
                kind, me = e.get("type"), c.state["nick"]
                if kind == "welcome":
                    c.state["nick"] = e["nick"]
                elif kind == "nick" and e["old"] == me:
                    c.state["nick"] = e["new"]
                elif kind == "joined":
                    c.state["rooms"].add(e["room"])
                elif kind == "part" and e["nick"] == me:
                    c.state["rooms"].discard(e["room"])
        if any(c.closed for c in self.live):
            raise AssertionError(f"the server closed a client that did nothing wrong: "
                                 f"{[(c, c.lines[-2:]) for c in self.live if c.closed]}")

    def _finish(self) -> None:
        """Stop acting; wait until the server has handled everything each live client sent; learn the rest."""
        self.swarm.sync(self.live, "end", timeout=60)
        self._learn()


def test_random_commands_from_many_threads_leave_consistent_state(
    make_server: Callable[..., ServerThread],
) -> None:
    threads, per_thread, seconds = scale(6, 12), scale(12, 40), scale(6.0, 120.0)
    server = make_server(backlog=5)
    seed = random.randrange(1 << 30)
    print(f"stress seed {seed}")
    with capture_logs() as logs:
        watchdog = Watchdog(server)
        deadline = time.monotonic() + seconds
        players = [Player(server, seed + i, per_thread, deadline) for i in range(threads)]
        for p in players:
            p.thread.start()
        for p in players:
            p.thread.join(seconds + 90)
            assert not p.thread.is_alive(), f"{p.thread.name} hung"
            if p.error:
                raise p.error
        watchdog.stop()
        assert watchdog.failure is None, watchdog.failure

        expected_nicks = {c.state["nick"] for p in players for c in p.live if c.state["nick"]}
        expected_rooms: dict[str, set[str]] = {}
        for p in players:
            for c in p.live:
                for room in c.state["rooms"]:
                    expected_rooms.setdefault(room, set()).add(c.state["nick"])

        def view() -> tuple[set[str], dict[str, set[str]], list[str]]:  # on the loop thread (call_soon)
            state = server.loop.state
            nicks = {s.nick for s in state.nicks.values()} - {"watchdog"}
            rooms = {r.name: {m.nick for m in r.members} - {"watchdog"} for r in state.rooms.values() if r.members}
            return nicks, {k: v for k, v in rooms.items() if v}, state_problems(server.loop)

        # dropped connections are noticed by the server on its own time: wait for it to settle
        settle = time.monotonic() + 10
        while True:
            nicks, rooms, problems = server.loop.call_soon(view).result(10)
            if (nicks, rooms) == (expected_nicks, expected_rooms) and not problems:
                break
            if time.monotonic() > settle:
                break
            time.sleep(0.05)
        assert not problems, problems
        assert nicks == expected_nicks, (nicks ^ expected_nicks)
        assert rooms == expected_rooms
        assert not logs.problems(), logs.problems()[:5]
    assert server.thread.is_alive() and server.error is None
    ops = sum((p.ops for p in players), Counter())
    for p in players:
        p.swarm.close_all()
    record_figures("stress", threads=threads, seconds=seconds, operations=sum(ops.values()), **dict(ops),
                   worst_ping_s=round(watchdog.worst, 3), online_at_end=len(expected_nicks))


class Watchdog:
    """Pings the server every 0.2 s; an answer later than 10 s is a hang, and every thread's stack is dumped."""

    LIMIT = 10.0

    def __init__(self, server: ServerThread) -> None:
        self.client = LineClient(server.host, server.port)
        self.client.register("watchdog")
        self.worst = 0.0
        self.failure: str | None = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(0.2):
            n += 1
            start = time.monotonic()
            try:
                self.client.send(f"/ping w{n}")
                self.client.expect(f"pong w{n}", timeout=self.LIMIT)
            except Exception as e:
                self.failure = f"the server did not answer a ping within {self.LIMIT:g} s: {e}"
                faulthandler.dump_traceback(sys.stderr)
                return
            self.worst = max(self.worst, time.monotonic() - start)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(self.LIMIT + 5)
        self.client.close()


def state_problems(loop: object) -> list[str]:
    """Every way the server's chat state could disagree with itself. Run on the loop thread (call_soon)."""
    connections = loop.connections  # type: ignore[attr-defined]
    problems = loop.state.problems({c.member for c in connections.values()})  # type: ignore[attr-defined]
    live = set(connections.values())
    for fd, c in connections.items():
        if c.fd != fd:
            problems.append(f"{c} is filed under fd {fd}")
    for name in ("unregistered", "waiting", "paused", "ending"):
        group = getattr(loop, name)
        if group - live:
            problems.append(f"closed connections left in {name}: {group - live}")
    return problems
