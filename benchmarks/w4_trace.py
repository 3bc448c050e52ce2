"""Where W4's latency goes: the server with stage timers, under the shared loadgen's paced workload.

    python benchmarks/w4_trace.py                        # W4: 100 clients, 500 msgs/s, 15 s
    python benchmarks/w4_trace.py --rate 2000 --duration 30 --db-dir /dev/shm
    python benchmarks/w4_trace.py --variant nogc --variant switch=0.0001 --variant nocheckpoint --reps 3

Each run starts a fresh `chat serve` (fresh SQLite file) in a child process whose event loop and storage writer
are wrapped with timers (nothing else changes), runs loadgen against it, and prints loadgen's latency beside the
stages of one message's way through the server:

* `commit wait`: from handing a batch to the writer to the loop taking the commit back (the writer's work plus
  two thread hand-offs);
* `store write`: the writer's own time for the batch, with its thread CPU time beside it for the slow ones, which
  tells a commit that computes (CPU close to wall) from one that waits (for the GIL, a core, or the disk);
* `fan-out`: the loop's pass that writes the committed messages to every member's socket;
* `send()`: one socket write.

Variants are the knobs the tail might hide behind: `nogc` (the cyclic collector off after start),
`switch=S` (`sys.setswitchinterval(S)`), `nocheckpoint` (no background WAL checkpointer). A diagnostic, not a
test: figures depend on the machine, and on what else runs on it.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
JOINED_MARKER = (HERE / "JOINED_MARKER").read_text().strip()
SLOW_COMMIT_S = 0.002


def percentiles(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    if not v:
        return {}
    return {f"p{p}": v[min(len(v) - 1, int(len(v) * p / 100))] for p in (50, 90, 99, 99.9)} | {"max": v[-1],
                                                                                                "n": len(v)}


# ------------------------------------------------------------------------------------ the server side


def serve_with_timers(report: Path, variants: list[str], argv: list[str]) -> None:
    """Patch the timers in, apply the variants, then run `chat` with `argv` (in this process)."""
    from chat.server import loop as loop_module
    from chat.server import storage_worker, transport

    clock = time.perf_counter
    stages: dict[str, list[float]] = {"commit wait": [], "store write": [], "fan-out": [], "send()": []}
    slow: list[tuple[float, float, int]] = []
    marks: dict[str, float] = {}
    loop_cls = loop_module.EventLoop
    submit, committed, flush_dirty = loop_cls._submit, loop_cls._committed, loop_cls._flush_dirty

    def timed_submit(self, outbox):  # type: ignore[no-untyped-def]
        marks["submitted"] = clock()
        return submit(self, outbox)

    def timed_committed(self, job):  # type: ignore[no-untyped-def]
        now = marks["committed"] = clock()
        if "submitted" in marks:
            stages["commit wait"].append(now - marks.pop("submitted"))
        return committed(self, job)

    def timed_flush_dirty(self):  # type: ignore[no-untyped-def]
        start = clock()
        flush_dirty(self)
        if marks.pop("committed", None) is not None:
            stages["fan-out"].append(clock() - start)

    writer_execute = storage_worker.StorageWorker._execute

    def timed_execute(self, job):  # type: ignore[no-untyped-def]
        start, cpu = clock(), time.thread_time()
        writer_execute(self, job)
        wall = clock() - start
        stages["store write"].append(wall)
        if wall > SLOW_COMMIT_S:
            slow.append((wall, time.thread_time() - cpu, len(job.outbox.writes.messages)))

    sends = stages["send()"]

    def timed_send(self, data):  # type: ignore[no-untyped-def]
        start = clock()
        n = self.sock.send(data)
        sends.append(clock() - start)
        return n

    loop_cls._submit, loop_cls._committed, loop_cls._flush_dirty = timed_submit, timed_committed, timed_flush_dirty
    storage_worker.StorageWorker._execute = timed_execute
    transport.SocketTransport.send = timed_send
    for variant in variants:
        if variant == "nogc":
            import gc
            gc.disable()
        elif variant.startswith("switch="):
            sys.setswitchinterval(float(variant.split("=", 1)[1]))
        elif variant == "nocheckpoint":
            from chat.storage import checkpoint
            checkpoint.WalCheckpointer.start = lambda self: None  # type: ignore[method-assign]

    def write_report() -> None:
        out = {name: percentiles(v) for name, v in stages.items()}
        out["slow commits"] = [{"wall": w, "cpu": c, "messages": n} for w, c, n in slow]  # type: ignore[assignment]
        report.write_text(json.dumps(out))

    atexit.register(write_report)
    from chat.cli.main import main
    sys.argv = ["chat", *argv]
    main()


# ------------------------------------------------------------------------------------ the driver side


def run_once(args: argparse.Namespace, variants: list[str], port: int) -> dict:
    with tempfile.TemporaryDirectory(dir=args.db_dir) as tmp:
        report = Path(tmp) / "stages.json"
        log = Path(tmp) / "server.log"
        cmd = [sys.executable, __file__, "--serve", str(report), ",".join(variants), "--", "serve",
               "--db", f"{tmp}/chat.sqlite", "--host", "127.0.0.1", "--port", str(port), "--rate", "0",
               "--log-level", "warning"]
        with open(log, "wb") as f:
            server = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while "listening on" not in log.read_text(errors="replace"):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.05)
            lg = subprocess.run(
                [args.loadgen, "--host", "127.0.0.1", "--port", str(port), "--proto", "line", "--joined-marker",
                 JOINED_MARKER, "--clients", str(args.clients), "--mode", "paced", "--rate", str(args.rate),
                 "--duration", str(args.duration), "--idle-timeout", "30", "--timeout", str(args.duration + 90),
                 "--server-pid", str(server.pid)],
                capture_output=True, text=True, timeout=args.duration + 120)
        finally:
            server.terminate()
            server.wait(30)
        kv = dict(tok.split("=", 1) for tok in lg.stdout.split() if "=" in tok)
        return {"loadgen": kv, "stages": json.loads(report.read_text()) if report.exists() else {}}


def print_run(label: str, result: dict) -> None:
    kv, stages = result["loadgen"], result["stages"]
    print(f"\n## {label}: status={kv.get('status')} deliveries={kv.get('deliveries')} latency p50 "
          f"{kv.get('lat_p50_ms')} p90 {kv.get('lat_p90_ms')} p99 {kv.get('lat_p99_ms')} max "
          f"{kv.get('lat_max_ms')} ms; server CPU {kv.get('srv_cpu_run_s', '?')} s")
    print("| stage | n | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs |\n|---|--:|--:|--:|--:|--:|--:|")
    for name, p in stages.items():
        if name == "slow commits" or not p:
            continue
        print(f"| {name} | {p['n']:,} | " + " | ".join(f"{p[k] * 1e6:,.1f}" for k in
                                                      ("p50", "p90", "p99", "p99.9", "max")) + " |")
    slow = stages.get("slow commits", [])
    computing = sum(1 for s in slow if s["cpu"] > 0.5 * s["wall"])
    print(f"commits over {SLOW_COMMIT_S * 1e3:.0f} ms: {len(slow)} ({computing} computing, CPU ≥ half the wall "
          f"time; {len(slow) - computing} waiting)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        report, variants, _dashes, *argv = sys.argv[2:]
        serve_with_timers(Path(report), [v for v in variants.split(",") if v], argv)
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--rate", type=int, default=500, help="messages per second, all senders together")
    ap.add_argument("--duration", type=int, default=15, help="seconds of paced traffic per run")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--variant", action="append", default=[],
                    help="nogc, switch=SECONDS, nocheckpoint (repeatable; each is run beside the baseline)")
    ap.add_argument("--db-dir", default=None, help="where the SQLite file goes (e.g. /dev/shm: no disk)")
    ap.add_argument("--port", type=int, default=16695)
    ap.add_argument("--loadgen", default=os.environ.get("LOADGEN", "/tmp/chat-perf/build/loadgen"))
    args = ap.parse_args()
    if not Path(args.loadgen).exists():
        sys.exit(f"no loadgen at {args.loadgen}: build ../shared/bench/loadgen.c (benchmarks/run.sh does) or "
                 "set LOADGEN")
    print(f"W4 trace: {args.clients} clients, {args.rate} msgs/s, {args.duration} s, {args.reps} rep(s); "
          f"load average before: {os.getloadavg()[0]:.2f}")
    for rep in range(args.reps):
        for variant in ["", *args.variant]:  # alternating, so drift of the machine hits every variant alike
            print_run(f"rep {rep + 1}, {variant or 'baseline'}", run_once(args, [variant] if variant else [],
                                                                         args.port))


if __name__ == "__main__":
    main()
