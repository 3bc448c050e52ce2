#!/usr/bin/env python3
"""TLS against plain, measured by the same tool in the same run: every client on TLS, or every client plain.

    .venv/bin/python benchmarks/tls.py [--reps 3] [--tool tlsload|bench|loadgen] [--profile] [--port 16700]
        [--chat-bin A/bin/chat --chat-bin B/bin/chat]

Workloads (those of run.py):

* W2  100 clients in one room, 100 messages each, window 32: deliveries per second (burst).
* W4  100 clients in one room, 500 messages a second in all, sent in turn: latency from send to each other
      member's receipt, p50 / p99 / p99.9 (paced; 30 s with tlsload, 10 s with the other tools).

For every rep, workload and mode a fresh `chat serve` (fresh SQLite database, --rate 0, both doors: plain on
PORT, TLS on PORT+1) is started with a self-signed certificate made by the README's openssl one-liner; plain and
TLS alternate, and which goes first alternates between reps. Before each run the runner waits (up to
--quiet-wait s) for other programs to go quiet, and says how busy they were.

--tool tlsload (the default): `benchmarks/tlsload.c`, our C load generator that speaks TLS itself (OpenSSL; the
same code with `--tls 0` for plain), built with gcc into $BENCH_WORK/build (default /tmp/chat-perf/build). It is
loadgen's accounting (see its header) without the relay, so plain and TLS differ only by the encryption at both
ends. It verifies the server's certificate against the one made here (`--ca`).

--tool bench: `chat.bench.run_bench` in this process (Python, one thread; it decrypts on TLS as the server
encrypts, so the client's CPU is printed too). It is itself the bottleneck: plain and TLS come out alike.

--tool loadgen: the shared C load generator (run.py's W2 and W4 arguments), which has no TLS: its TLS clients go
through a `socat` relay that speaks TLS to the server (one relay process per client, on the same two cores: a
pessimistic TLS figure, since the relay decrypts and encrypts again and adds a hop).

The server's CPU seconds during the message phase come from /proc, so the cost per delivery on the server's side
is seen apart from the client's.

--profile: py-spy (`--gil`, the thread holding the interpreter) on the server while W2 runs repeatedly, plain
then TLS (driven by chat bench), summarised by pyspy_top.py: where the server's time goes, and what TLS adds.

Standard library plus the project itself (chat.bench, chat.client.connection); gcc and libssl-dev for tlsload.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import pyspy_top  # noqa: E402
import run  # noqa: E402  (its process helpers: spawn/stop with PDEATHSIG, CPU ticks, waiting for quiet)

from chat.bench import BenchConfig, BenchResult, run_bench  # noqa: E402
from chat.client.connection import tls_context  # noqa: E402

# The README's one-liner for a self-signed certificate (here for 127.0.0.1 as well as localhost).
SELF_SIGNED = ("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 "
               "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 "
               "-keyout {key} -out {cert}")

# tlsload takes loadgen's arguments; its W4 runs 30 s (run.py's W4L) so that p99.9 rests on 1.5 million deliveries
TLSLOAD_WORKLOADS = {"W2": run.WORKLOADS["W2"], "W4": run.WORKLOADS["W4L"]}
TLSLOAD_SOURCE = HERE / "tlsload.c"
TLSLOAD = run.WORK / "build" / "tlsload"

WORKLOADS: dict[str, Callable[[], dict[str, float]]] = {
    "W2": lambda: {"clients": 100, "messages": 100, "window": 32},
    "W4": lambda: {"clients": 100, "rate": 500.0, "messages": math.ceil(500 * 10 / 100)},
}


def make_certificate(directory: Path) -> tuple[str, str]:
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    subprocess.run(SELF_SIGNED.format(cert=cert, key=key).split(), check=True, capture_output=True, timeout=60)
    return cert, key


class Server:
    def __init__(self, work: Path, port: int, cert: str, key: str, chat_bin: str | None = None) -> None:
        self.work, self.port, self.cert, self.key = work, port, cert, key
        self.chat_bin = chat_bin or run.CHAT_BIN
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        db = self.work / "bench.sqlite"
        for suffix in ("", "-wal", "-shm", ".lock"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        out = self.work / "server.out"
        out.unlink(missing_ok=True)
        cmd = [self.chat_bin, "serve", "--db", str(db), "--port", str(self.port), "--tls-port", str(self.port + 1),
               "--tls-cert", self.cert, "--tls-key", self.key, "--rate", "0", "--log-level", "warning"]
        self.proc = run.spawn(cmd, out)
        deadline = time.monotonic() + 60
        while "listening on" not in out.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chat serve did not start: {out.read_text(errors='replace')[-2000:]}")
            time.sleep(0.02)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            run.stop(self.proc)


def one_run(server: Server, wl: str, tls: bool, cert: str, prefix: str) -> dict[str, float]:
    params = WORKLOADS[wl]()
    cpu: dict[str, int] = {}

    def progress(phase: str, _fraction: float) -> None:
        if phase == "sending" and "start" not in cpu:
            cpu["start"] = run.proc_ticks(server.pid)

    cfg = BenchConfig(port=server.port + 1 if tls else server.port, prefix=prefix, timeout=120,
                      tls=tls_context(cert) if tls else None, **params)  # type: ignore[arg-type]
    other = run.wait_for_quiet(20.0)
    result: BenchResult = run_bench(cfg, progress)
    server_cpu = (run.proc_ticks(server.pid) - cpu.get("start", 0)) / run.CLK_TCK
    if not result.ok:
        raise RuntimeError(f"{wl} {'tls' if tls else 'plain'}: {dict(result.rows())}")
    return {
        "deliveries_per_s": result.deliveries / result.elapsed_s,
        "p50_ms": result.percentile(50) or 0.0,
        "p99_ms": result.percentile(99) or 0.0,
        "server_cpu_s": server_cpu,
        "server_us_per_delivery": server_cpu / result.deliveries * 1e6,
        "client_cpu_s": result.cpu_s,
        "elapsed_s": result.elapsed_s,
        "other_pct": other,
    }


def loadgen_run(server: Server, wl: str, tls: bool, cert: str, label: str) -> dict[str, float]:
    """One run of the C loadgen; TLS through a socat relay on PORT+2."""
    port, relay = server.port, None
    if tls:
        port = server.port + 2
        relay = run.spawn(["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,backlog=1024",
                           f"OPENSSL:127.0.0.1:{server.port + 1},cafile={cert},nodelay"], server.work / "socat.log")
        deadline = time.monotonic() + 10
        while not run.port_busy(port):
            if time.monotonic() > deadline:
                raise RuntimeError("socat did not start")
            time.sleep(0.02)
    other = run.wait_for_quiet(20.0)
    cmd = [run.LOADGEN, "--proto", "line", "--port", str(port), *run.WORKLOADS[wl].split(), "--conn-concurrency",
           "100", "--server-pid", str(server.pid), "--label", label, "--joined-marker", run.JOINED_MARKER]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=200).stdout.strip()
    finally:
        if relay is not None:
            run.stop(relay)
    kv = run.parse_kv(out)
    if kv.get("status") != "ok":
        raise RuntimeError(f"loadgen {wl} {'tls' if tls else 'plain'}: {out}")
    deliveries = float(kv["deliveries"])
    return {
        "deliveries_per_s": float(kv["deliveries_per_s"]),
        "p50_ms": float(kv["lat_p50_ms"]),
        "p99_ms": float(kv["lat_p99_ms"]),
        "server_cpu_s": float(kv["srv_cpu_run_s"]),
        "server_us_per_delivery": float(kv["srv_cpu_run_s"]) / deliveries * 1e6,
        "client_cpu_s": float(kv["lg_cpu_s"]),  # (the relay's processes are gone before they could be counted)
        "elapsed_s": float(kv["elapsed_s"]),
        "other_pct": other,
    }


def build_tlsload() -> str:
    """Compile tlsload.c (outside the repository) unless the binary is newer than the source."""
    if not TLSLOAD.exists() or TLSLOAD.stat().st_mtime < TLSLOAD_SOURCE.stat().st_mtime:
        TLSLOAD.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(TLSLOAD), str(TLSLOAD_SOURCE), "-lssl", "-lcrypto", "-lm"],
                       check=True, timeout=120)
    return str(TLSLOAD)


def tlsload_run(server: Server, wl: str, tls: bool, cert: str, label: str, quiet_wait: float) -> dict[str, float]:
    """One run of tlsload, plain on PORT or TLS on PORT+1: the same binary, the same code path."""
    other = run.wait_for_quiet(20.0, quiet_wait)
    cmd = [str(TLSLOAD), "--port", str(server.port + 1 if tls else server.port), "--tls", "1" if tls else "0",
           *(["--ca", cert] if tls else []), *TLSLOAD_WORKLOADS[wl].split(), "--conn-concurrency", "100",
           "--server-pid", str(server.pid), "--label", label, "--joined-marker", run.JOINED_MARKER]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=200).stdout.strip()
    kv = run.parse_kv(out)
    if kv.get("status") != "ok" or kv.get("dups") != "0" or kv.get("misrouted") != "0":
        raise RuntimeError(f"tlsload {wl} {'tls' if tls else 'plain'}: {out}")
    deliveries = float(kv["deliveries"])
    return {
        "deliveries_per_s": float(kv["deliveries_per_s"]),
        "p50_ms": float(kv["lat_p50_ms"]),
        "p99_ms": float(kv["lat_p99_ms"]),
        "p999_ms": float(kv["lat_p999_ms"]),
        "max_ms": float(kv["lat_max_ms"]),
        "send_lag_p99_ms": float(kv["send_lag_p99_ms"]),
        "server_cpu_s": float(kv["srv_cpu_run_s"]),
        "server_us_per_delivery": float(kv["srv_cpu_run_s"]) / deliveries * 1e6,
        "client_cpu_s": float(kv["lg_cpu_s"]),
        "elapsed_s": float(kv["elapsed_s"]),
        "other_pct": other,
    }


def profile(work: Path, port: int, cert: str, key: str, runs: int) -> str:
    pyspy = shutil.which("py-spy", path=str(HERE.parent / ".venv" / "bin")) or shutil.which("py-spy")
    if not pyspy:
        return "(py-spy not found: no profile)\n"
    out = []
    for tls in (False, True):
        name = "tls" if tls else "plain"
        raw = work / f"profile-W2-{name}.raw"
        with Server(work, port, cert, key) as server:
            spy = run.spawn([pyspy, "record", "--pid", str(server.pid), "--rate", "250", "--function", "--gil",
                             "--format", "raw", "--output", str(raw)], work / f"py-spy-{name}.log")
            time.sleep(1.0)
            for i in range(runs):
                one_run(server, "W2", tls, cert, f"p{i}x")
            run.stop(spy, signal.SIGINT, grace=30)
        if raw.exists():
            stacks = pyspy_top.parse(raw)
            total = sum(n for _, _, n in stacks) or 1
            in_tls = sum(n for _, frames, n in stacks if any("chat/server/tls.py" in f or re.search(r"\bssl\.py", f)
                                                             for f in frames))
            out.append(f"{name}: {total} samples; with TLS code (chat/server/tls.py, ssl.py) on the stack: "
                       f"{in_tls} ({100 * in_tls / total:.1f}%)")
            out.append(pyspy_top.summarise(raw, top=15, title=f"W2 × {runs} runs, {name}, GIL holder"))
        else:
            out.append(f"(py-spy wrote nothing for {name}: see {work / f'py-spy-{name}.log'})")
    return "\n\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--port", type=int, default=16700, help="plain port; TLS on the next one")
    parser.add_argument("--workloads", default="W2 W4")
    parser.add_argument("--tool", choices=("tlsload", "bench", "loadgen"), default="tlsload",
                        help="the client: tlsload (C, TLS itself), chat bench's engine (Python, TLS itself) or the "
                             "shared C loadgen (TLS via socat)")
    parser.add_argument("--quiet-wait", type=float, default=60.0,
                        help="at most this many seconds to wait for other programs to go quiet before each run")
    parser.add_argument("--chat-bin", action="append", default=[],
                        help="the `chat` to serve (repeatable: an A/B of two builds, interleaved in every rep; "
                             "default the venv's)")
    parser.add_argument("--profile", action="store_true", help="also profile the server under W2, plain and TLS")
    parser.add_argument("--profile-runs", type=int, default=8)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="chat-tls-bench-"))
    cert, key = make_certificate(work)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    if args.tool == "tlsload":
        build_tlsload()
    bins = args.chat_bin or [run.CHAT_BIN]
    by_bin: dict[str, dict[tuple[str, str], list[dict[str, float]]]] = {b: {} for b in bins}
    try:
        for rep in range(args.reps):
            for wl in args.workloads.split():
                modes = ("plain", "tls") if rep % 2 == 0 else ("tls", "plain")
                order = bins if rep % 2 == 0 else bins[::-1]  # which build goes first alternates too
                for mode in modes:
                    for chat_bin in order:
                        with Server(work, args.port, cert, key, chat_bin) as server:
                            label = f"{wl}/{mode}/{rep}"
                            if args.tool == "tlsload":
                                r = tlsload_run(server, wl, mode == "tls", cert, label, args.quiet_wait)
                            elif args.tool == "loadgen":
                                r = loadgen_run(server, wl, mode == "tls", cert, label)
                            else:
                                r = one_run(server, wl, mode == "tls", cert, f"r{rep}x")
                        by_bin[chat_bin].setdefault((wl, mode), []).append(r)
                        which = f" [{chat_bin}]" if len(bins) > 1 else ""
                        print(f"rep {rep} {wl} {mode}{which}: {r['deliveries_per_s']:,.0f} deliveries/s, p50 "
                              f"{r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, p99.9 "
                              f"{r.get('p999_ms', math.nan):.2f} ms, server {r['server_us_per_delivery']:.2f} "
                              f"µs/delivery, client CPU {r['client_cpu_s']:.1f} s, others {r['other_pct']:.0f}% "
                              f"of a core, load {_loadavg()[0]:.2f}", file=sys.stderr, flush=True)
        print("client: " + {"tlsload": "tlsload (C, OpenSSL in the client, the certificate verified)",
                            "loadgen": "the C loadgen (TLS through socat)", "bench": "chat bench (Python)"}[args.tool])
        for chat_bin, results in by_bin.items():
            if len(bins) > 1:
                print(f"\n{chat_bin}:")
            print(report(results, args.reps))
        if args.profile:
            print(profile(work, args.port, cert, key, args.profile_runs))
    finally:
        run.stop_all()
        shutil.rmtree(work, ignore_errors=True)


def report(results: dict[tuple[str, str], list[dict[str, float]]], reps: int) -> str:
    """Median (min to max) of the reps, plain and TLS side by side; the ratio is of the medians."""
    def cell(wl: str, mode: str, key: str, fmt: str) -> tuple[str, float]:
        values = [r[key] for r in results.get((wl, mode), []) if key in r]
        if not values:
            return "–", math.nan
        med = statistics.median(values)
        return f"{med:{fmt}} ({min(values):{fmt}} to {max(values):{fmt}})", med

    rows = [("W2", "deliveries_per_s", ",.0f", "W2 deliveries/s (100 clients × 100 msgs, window 32)"),
            ("W2", "server_us_per_delivery", ".2f", "W2 server CPU µs per delivery"),
            ("W2", "client_cpu_s", ".2f", "W2 client CPU s (loadgen: without the relay)"),
            ("W4", "p50_ms", ".2f", "W4 latency p50 ms (100 clients, 500 msgs/s)"),
            ("W4", "p99_ms", ".2f", "W4 latency p99 ms"),
            ("W4", "p999_ms", ".2f", "W4 latency p99.9 ms"),
            ("W4", "max_ms", ".2f", "W4 latency max ms"),
            ("W4", "send_lag_p99_ms", ".2f", "W4 the client's own send lag p99 ms"),
            ("W4", "server_us_per_delivery", ".2f", "W4 server CPU µs per delivery")]
    lines = [f"median (min to max) of {reps} runs per cell; load average "
             f"{' / '.join(f'{x:.2f}' for x in _loadavg())}", "",
             "| | plain | TLS | TLS ÷ plain (medians) |", "|---|--:|--:|--:|"]
    for wl, key, fmt, label in rows:
        if (wl, "plain") not in results or not any(key in r for r in results[(wl, "plain")]):
            continue
        (plain, p), (tls, t) = cell(wl, "plain", key, fmt), cell(wl, "tls", key, fmt)
        lines.append(f"| {label} | {plain} | {tls} | {t / p if p else math.nan:.2f} |")
    worst = max((r["other_pct"] for rs in results.values() for r in rs), default=0.0)
    lines += ["", f"other programs used at most {worst:.0f}% of a core just before a run"]
    return "\n".join(lines)


def _loadavg() -> tuple[float, float, float]:
    with open("/proc/loadavg") as f:
        a, b, c = f.read().split()[:3]
    return float(a), float(b), float(c)


if __name__ == "__main__":
    main()
