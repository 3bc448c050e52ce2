#!/usr/bin/env python3
"""A/B: our server as it is against variants of it (experiments/tuned.py), interleaved, on loadgen workloads.

    benchmarks/run.sh --help >/dev/null   # once: builds loadgen into $BENCH_WORK/build
    .venv/bin/python benchmarks/experiments/ab.py                          # as-is vs each tuning, W1-W3, 5 reps
    .venv/bin/python benchmarks/experiments/ab.py --variants "as-is gc fastwrite gc,fastwrite,jobref" --reps 7

Each run gets a fresh server and database; within a rep, every variant runs every workload before the next
rep starts, so drift on a shared machine hits all variants alike. Prints the median deliveries/s and server
CPU seconds per run for each (workload, variant), and the change against "as-is".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="as-is gc fastwrite gc,fastwrite,jobref",
                    help="'as-is' (the installed chat) or a TUNE list for tuned.py")
    ap.add_argument("--workloads", default="W1 W2 W3")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--port", type=int, default=16692)
    args = ap.parse_args()
    variants = args.variants.split()
    workloads = args.workloads.split()
    run.WORK.mkdir(parents=True, exist_ok=True)
    errlog = run.WORK / "ab_loadgen_stderr.txt"
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    try:
        for rep in range(1, args.reps + 1):
            for wl in workloads:
                for v in variants:
                    cmd = None if v == "as-is" else [run.CHAT_PYTHON, str(HERE / "tuned.py")]
                    env = {} if v == "as-is" else {"TUNE": v}
                    srv = run.Server("chat", args.port, run.WORK / "ab.sqlite", log_dir=run.WORK,
                                     serve_cmd=cmd or [run.CHAT_BIN], env=env)
                    run.wait_for_quiet(25.0)
                    with srv:
                        time.sleep(0.3)
                        watch = run.CpuWatch(srv.pid)
                        kv, _ = run.loadgen(srv, run.WORKLOADS[wl], 1000, f"ab/{v}/{wl}/{rep}", errlog)
                        other = watch.other_pct()
                    if kv.get("status") != "ok":
                        print(f"{wl} {v} rep {rep}: status={kv.get('status')}", flush=True)
                        continue
                    d, cpu = float(kv["deliveries_per_s"]), float(kv.get("srv_cpu_run_s", "nan"))
                    p99 = float(kv.get("lat_p99_ms", "nan"))
                    results.setdefault((wl, v), []).append((d, cpu, p99))
                    print(f"{wl} {v:24} rep {rep}: {d:>12,.0f} deliveries/s, p99 {p99:.2f} ms, server CPU "
                          f"{cpu:.2f} s, other programs {other:.0f}% of a core", flush=True)
    finally:
        run.stop_all()
    print("\n| workload | variant | deliveries/s (median) | vs as-is | latency p99 ms (median) | "
          "server CPU s per run (median) | runs |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for wl in workloads:
        base = results.get((wl, "as-is"))
        b = statistics.median(x[0] for x in base) if base else None
        for v in variants:
            rs = results.get((wl, v), [])
            if not rs:
                continue
            d = statistics.median(x[0] for x in rs)
            cpu = statistics.median(x[1] for x in rs)
            p99 = statistics.median(x[2] for x in rs)
            change = f"{(d / b - 1) * 100:+.0f}%" if b and v != "as-is" else "-"
            print(f"| {wl} | {v} | {d:,.0f} | {change} | {p99:.2f} | {cpu:.3f} | {len(rs)} |")


if __name__ == "__main__":
    main()
