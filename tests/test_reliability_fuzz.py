"""Network fuzz: many clients throw random bytes, random commands, huge and unterminated lines, invalid UTF-8,
floods, half-closes and resets at a real `chat serve` for a bounded time, while a canary client chats.

Checked: every canary message reaches the watcher, in order and in good time; the server's memory stays
within what its limits allow (no unterminated line is buffered, no queue grows past --sendq); its log (JSON)
holds no error and no unhandled exception; afterwards it still serves and stops cleanly on SIGTERM.
The seed is printed: CHAT_FUZZ_SEED=<seed> replays a run.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import time
from collections import Counter

from chat.protocol.commands import VERBS
from harness import (
    ServeProcess,
    Swarm,
    SwarmClient,
    log_problems,
    peak_rss_bytes,
    record_figures,
    rss_bytes,
    scale,
)

FUZZERS = 40
SENDQ = 256 * 1024
MAX_LINE = 4096
SLACK = 16 * 2**20  # what is not a connection's: 1-3 MiB of growth measured in 10 s and in the 300 s soak
INVALID_UTF8 = [b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82", b"\xff\xfe", b"\x80",
                b"\xf4\x90\x80\x80", b"caf\xe9"]
WEIRD = "\x00\x1b[2J\x07\u202e\u200f\x85\ufeff\ud7ff\U0001f600\U0010ffff'\"\\%s:?;--/*"


class Fuzzer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.inputs: Counter[str] = Counter()
        self.bytes_sent = 0

    def text(self, size: int) -> str:
        rng = self.rng
        pool = [WEIRD, "abc xyz ", "#lobby #dev ", "/", "0123456789"]
        return "".join(rng.choice(rng.choice(pool)) for _ in range(size))

    def act(self, swarm: Swarm, c: SwarmClient) -> None:
        rng = self.rng
        kind = rng.choices(["bytes", "command", "huge", "unterminated", "utf8", "flood", "chat", "drop", "half",
                            "silent"], [20, 30, 4, 2, 10, 3, 20, 4, 2, 1])[0]
        self.inputs[kind] += 1
        data = b""
        if kind == "bytes":
            data = rng.randbytes(rng.randint(1, 2000))
        elif kind == "command":
            verb = rng.choice([*VERBS, "x", "", "/", "JOIN", "nick" * 50])
            size = rng.choice([0, 1, 5, 30, 200, MAX_LINE - 10, MAX_LINE + 10, 10_000])
            data = f"/{verb} {self.text(size)}\n".encode("utf-8", "surrogatepass")
        elif kind == "huge":
            data = b"h" * rng.randint(MAX_LINE, 200_000) + b"\n"
        elif kind == "unterminated":
            data = rng.randbytes(64).replace(b"\n", b" ") * (rng.randint(4, 16) * 1024)  # 256 KB - 1 MB
        elif kind == "utf8":
            data = b"".join(rng.choice([*INVALID_UTF8, b"ok ", "é".encode()]) for _ in range(rng.randint(1, 20)))
            data += b"\n"
        elif kind == "flood":
            data = b"".join(b"flood %d\n" % i for i in range(rng.randint(50, 600)))
        elif kind == "chat":
            data = rng.choice([f"f{rng.randrange(10**6)}", f"/join {rng.choice(['dev', 'lobby', 'x'])}",
                               "/leave lobby", self.text(rng.randint(1, 100)), "/rooms", "/history 50",
                               "/format json", "/who"]).encode("utf-8", "surrogatepass") + b"\n"
        elif kind == "drop":
            swarm.drop(c, reset=rng.random() < 0.5)
            return
        elif kind == "half":
            try:
                c.sock.shutdown(socket.SHUT_WR)
            except OSError:  # the server closed it already (a flood, say): it reconnects
                swarm.drop(c)
            c.state["half"] = True
            return
        elif kind == "silent":
            c.state["silent"] = True
            return
        self.bytes_sent += len(data)
        c.send_raw(data)


def test_fuzzing_clients_do_not_hurt_the_canary(tmp_path) -> None:  # type: ignore[no-untyped-def]
    seed = int(os.environ.get("CHAT_FUZZ_SEED") or random.randrange(1 << 32))
    print(f"fuzz seed {seed} (CHAT_FUZZ_SEED={seed} replays it)")
    rng = random.Random(seed)
    seconds = scale(10.0, 300.0)
    # The cheap argon2id profile: fuzzers register and log in at random, and with the real one each hash holds
    # 64 MiB while it runs, up to --password-threads at once (a storm's own bound, held by
    # test_reliability_limits.py::test_a_login_storm_holds_hashing_memory_to_the_password_threads). Here the
    # memory check is about what fuzzing input makes the server buffer.
    proc = ServeProcess(str(tmp_path / "chat.sqlite"), "--log-format", "json", "--rate", "50", "--burst", "50",
                        "--flood-limit", "200", "--sendq", str(SENDQ), "--max-line", str(MAX_LINE),
                        "--nick-timeout", "2", "--password-profile", "test")
    swarm = Swarm(proc.host, proc.port)
    fuzz = Fuzzer(rng)
    try:
        canary, watcher = swarm.connect(2, prefix="canary")
        swarm.register([canary, watcher], ["canary", "watcher"])
        fuzzers = [swarm.connect(1, prefix="fz", keep=lambda _line: False)[0] for _ in range(FUZZERS)]
        swarm.run_for(0.5)
        baseline = rss_bytes(proc.proc.pid)

        sent_at: dict[int, float] = {}
        latency = 0.0
        n = 0
        start = time.monotonic()
        next_canary = start
        while time.monotonic() - start < seconds:
            now = time.monotonic()
            if now >= next_canary:  # the canary says a numbered line every 40 ms
                canary.send(f"canary {n}")
                sent_at[n] = now
                n += 1
                next_canary = now + 0.04
            for i, c in enumerate(fuzzers):
                if c.closed or (c.state.get("half") and rng.random() < 0.05):  # closed on it: reconnect
                    if not c.closed:
                        swarm.drop(c)
                    fuzzers[i] = c = swarm.connect(1, prefix="fz", keep=lambda _line: False)[0]
                    fuzz.inputs["reconnect"] += 1
                if not c.state.get("half") and not c.state.get("silent") and rng.random() < 0.3:
                    fuzz.act(swarm, c)
            swarm.pump(0.001)
            latency = max(latency, _canary_latency(watcher, sent_at))

        fuzz_peak = peak_rss_bytes(proc.proc.pid)
        swarm.run_until(lambda: _canary_seen(watcher) >= n, timeout=30, what="every canary line")
        latency = max(latency, _canary_latency(watcher, sent_at))
        got = [int(line.rsplit(" ", 1)[1]) for line in watcher.lines if line.startswith("[#lobby] canary: canary ")]
        assert got == list(range(n)), "canary lines lost, duplicated or out of order"
        assert latency < 5.0, f"a canary line took {latency:.1f} s to arrive"

        # memory: every connection is bounded by its limits; nothing else may grow
        allowed = SLACK + (FUZZERS + 2) * (SENDQ + 2 * 65536 + MAX_LINE)
        assert fuzz_peak - baseline < allowed, f"memory grew by {(fuzz_peak - baseline) >> 20} MiB under fuzzing"

        swarm.sync([canary, watcher], "after")  # still serving
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(30) == 0
        proc.kill()
        log = proc.log
    finally:
        swarm.close_all()
        proc.kill()
    records = [json.loads(line) for line in log.splitlines()]  # every line is one JSON object
    assert not log_problems(log), log_problems(log)[:5]
    reasons = Counter(m.group(1) for r in records if (m := re.search(r"reason=(\S+(?: \S+)*) after", r["message"])))
    inputs = sum(fuzz.inputs.values())
    record_figures("fuzz", seed=seed, seconds=seconds, fuzz_inputs=inputs, fuzz_bytes=fuzz.bytes_sent,
                   canary_lines_checked=n, canary_worst_latency_s=round(latency, 3),
                   rss_growth_mb=round((fuzz_peak - baseline) / 2**20, 1), disconnects=dict(reasons),
                   **{f"in_{k}": v for k, v in fuzz.inputs.items()})


def _canary_seen(watcher: SwarmClient) -> int:
    return sum(1 for line in watcher.lines if line.startswith("[#lobby] canary: canary "))


def _canary_latency(watcher: SwarmClient, sent_at: dict[int, float]) -> float:
    """The longest a canary line took, among those that arrived since the last call."""
    worst = 0.0
    now = time.monotonic()
    for line in watcher.take_new():
        if line.startswith("[#lobby] canary: canary "):
            worst = max(worst, now - sent_at[int(line.rsplit(" ", 1)[1])])
    return worst
