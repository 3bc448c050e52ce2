#!/usr/bin/env python3
"""Server CPU per message and per delivery, from /proc, for a fixed loadgen workload.

    python benchmarks/cpu_per_message.py [--workload L10S] [--reps 3] [--chat-bin .venv/bin/chat]

A fresh `chat serve` on a fresh SQLite file for each run, driven by the shared C loadgen (built into /tmp by
`gcc -O2` if missing) with `--server-pid`, so loadgen reads the server's utime+stime from /proc/PID/stat at the
workload's start and end. CPU time barely moves when other programs share the machine (wall-clock throughput
does), so this is the figure to compare code by. Prints one JSON line per run and a median line.

Workloads: `L10S` 10 clients x 10,000 messages burst (window 32: the small-room case of L10, shorter),
`L10` the full 10 x 50,000, `W4` 100 clients paced at 500 msgs/s for 10 s, `W4F` the same at 2,000 msgs/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = Path(os.environ.get("SHARED_BENCH", ROOT.parent.parent / "shared" / "bench"))
LOADGEN = Path(os.environ.get("LOADGEN", "/tmp/perf-loadgen"))
JOINED_MARKER = (HERE / "JOINED_MARKER").read_text().strip()
WORKLOADS = {
    "L10S": "--clients 10 --msgs 10000 --window 32",
    "L10": "--clients 10 --msgs 50000 --window 32",
    "W4": "--clients 100 --mode paced --rate 500 --duration 10",
    "W4F": "--clients 100 --mode paced --rate 2000 --duration 10",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_loadgen() -> None:
    if not LOADGEN.exists():
        src = SHARED / "loadgen.c"
        subprocess.run(["gcc", "-O2", "-o", str(LOADGEN), str(src), "-lm"], check=True)


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of `pid` so far (start-up and setup included), the loop as `loop` and the others
    by thread id (Python 3.11 does not name its threads for the kernel; the busiest other is the writer)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = "loop" if task.name == str(pid) else f"tid{task.name}"
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = round(out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick, 2)
        switches = sum(int(line.split()[1]) for line in (task / "status").read_text().splitlines()
                       if "ctxt_switches:" in line)  # voluntary and not
        out[name + "_switches"] = switches
    return out


def run_once(chat_bin: str, workload: str, extra: list[str]) -> dict[str, object]:
    folder = tempfile.mkdtemp(prefix="cpu-per-msg-")
    port = free_port()
    db = Path(folder) / "chat.sqlite"
    log = open(Path(folder) / "server.log", "wb")  # noqa: SIM115  (closed in the finally below)
    proc = subprocess.Popen([chat_bin, "serve", "--db", str(db), "--host", "127.0.0.1", "--port", str(port),
                             "--rate", "0", "--log-level", "warning", *extra], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        before = thread_cpu(proc.pid)  # start-up (imports, migrations) is not the workload's
        cmd = [str(LOADGEN), "--host", "127.0.0.1", "--port", str(port), "--proto", "line", "--joined-marker",
               JOINED_MARKER, "--server-pid", str(proc.pid), "--idle-timeout", "30", "--timeout", "300",
               *WORKLOADS[workload].split()]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
        kv: dict[str, str] = {}
        for line in res.stdout.splitlines():
            for tok in line.split():
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    kv[k] = v
        cpu = float(kv.get("srv_cpu_run_s", "nan"))
        msgs = int(kv.get("msgs_sent", kv.get("sent", "0")) or 0)
        after = thread_cpu(proc.pid)
        threads = {k: round(v - before.get(k, 0), 2) for k, v in after.items()}
        per_msg = {k: round(v * 1e6 / max(msgs, 1), 2) for k, v in threads.items() if not k.endswith("_switches")}
        deliveries = int(kv.get("deliveries", "0") or 0)
        return {"workload": workload, "status": kv.get("status"), "msgs": msgs, "deliveries": deliveries,
                "srv_cpu_s": cpu, "cpu_us_per_msg": round(cpu * 1e6 / msgs, 2) if msgs else None,
                "cpu_us_per_delivery": round(cpu * 1e6 / deliveries, 3) if deliveries else None,
                "deliveries_per_s": kv.get("deliveries_per_s"), "p50_ms": kv.get("lat_p50_ms"),
                "p99_ms": kv.get("lat_p99_ms"), "max_ms": kv.get("lat_max_ms"),
                "threads_cpu_s": threads, "threads_us_per_msg": per_msg, "lost": kv.get("lost"),
                "dups": kv.get("dups"), "reordered": kv.get("reordered")}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", default="L10S", choices=sorted(WORKLOADS))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--chat-bin", action="append", default=[],
                    help="the `chat` to run (repeat it for an A/B: the servers alternate within each rep)")
    ap.add_argument("--serve-arg", action="append", default=[], help="extra `chat serve` argument (repeatable)")
    args = ap.parse_args()
    bins = args.chat_bin or [str(ROOT / ".venv" / "bin" / "chat")]
    ensure_loadgen()
    runs: dict[str, list[dict[str, object]]] = {b: [] for b in bins}
    for rep in range(args.reps):
        for b in bins if rep % 2 == 0 else bins[::-1]:  # which goes first alternates, as the machine drifts
            r = run_once(b, args.workload, args.serve_arg)
            r["chat_bin"] = b
            print(json.dumps(r), flush=True)
            runs[b].append(r)
    for b, rs in runs.items():
        good = [r for r in rs if r["status"] == "ok"]
        if not good:
            continue
        med = {k: statistics.median(float(r[k]) for r in good if r[k] is not None)  # type: ignore[arg-type]
               for k in ("cpu_us_per_msg", "cpu_us_per_delivery", "deliveries_per_s", "p50_ms", "p99_ms", "max_ms")}
        med["loop_us_per_msg"] = statistics.median(r["threads_us_per_msg"]["loop"] for r in good)  # type: ignore[index]
        med["others_us_per_msg"] = statistics.median(  # the writer, mostly (the reader and checkpointer idle here)
            sum(v for k, v in r["threads_us_per_msg"].items() if k != "loop") for r in good)  # type: ignore[attr-defined]
        print(json.dumps({"chat_bin": b, "workload": args.workload, "runs": len(good),
                          "median": {k: round(v, 3) for k, v in med.items()},
                          "cpu_us_per_msg_all": sorted(r["cpu_us_per_msg"] for r in good)}))  # type: ignore[type-var]


if __name__ == "__main__":
    main()
