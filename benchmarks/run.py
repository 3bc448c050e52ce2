#!/usr/bin/env python3
"""Benchmark runner: `chat serve` (every message stored) against ngIRCd, with the shared C load generator.

Start it through `benchmarks/run.sh`, which installs ngircd if missing, builds loadgen and finds `chat`;
`run.sh --help` lists the flags. Parts (PARTS / --parts):

* loadgen  W1-W4 and the 1000-client setup, for each server, REPS times. Every run gets a fresh server process
           (and for ours a fresh database); the servers alternate within each rep. Same loadgen arguments as
           ../shared/bench/run_peers.sh; connect concurrency 1000 for ours (listen backlog 4096) and 10 for
           ngircd (it hard-codes listen(fd, 10)), plus SETUP10: 1000 clients at concurrency 10 for both.
* storage  messages stored per second through the real server (many 2-member rooms), checked in the database
           afterwards (every message once, each sender's messages in order); joining a room whose history holds
           1,000,000 messages (time to the end of its backlog); `chat history --limit 50` and `--grep` on that
           database, each timed as a whole process; ChatStore.write without the network (store_micro.py).
* memory   server RSS per idle connected client (1000 registered clients in one room, connected 10 at a time,
           and for ours also 1000 at a time), and RSS after each of 10 W2 runs against one server process.
* profile  py-spy on our server while W2 and W3 run repeatedly (on-CPU, GIL-only and GIL-with-C-frames views);
           top frames summarised (pyspy_top.py).

Results: benchmarks/results/<time>/ (raw.txt in run_peers.sh's format, *.json, profiles, summary.md), and the
summary is copied to benchmarks/LAST_RUN.md after a full run. Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import clients  # noqa: E402
import pyspy_top  # noqa: E402

ROOT = HERE.parent
WORK = Path(os.environ.get("BENCH_WORK", "/tmp/chat-perf"))
LOADGEN = os.environ.get("LOADGEN", str(WORK / "build" / "loadgen"))
_VENV_BIN = ROOT / ".venv" / "bin"
CHAT_BIN = (os.environ.get("CHAT_BIN") or (str(_VENV_BIN / "chat") if (_VENV_BIN / "chat").exists() else None)
            or shutil.which("chat") or "chat")
CHAT_PYTHON = os.environ.get("CHAT_PYTHON") or sys.executable
PYSPY = (os.environ.get("PYSPY") or (str(_VENV_BIN / "py-spy") if (_VENV_BIN / "py-spy").exists() else None)
         or shutil.which("py-spy") or "")
NGIRCD = shutil.which("ngircd") or "/usr/sbin/ngircd"
NGIRCD_CONF_SRC = Path(os.environ.get("NGIRCD_CONF_SRC", ROOT.parent / "shared" / "bench" / "configs" / "ngircd.conf"))
JOINED_MARKER = (HERE / "JOINED_MARKER").read_text().strip()

# the same loadgen arguments as ../shared/bench/run_peers.sh
WORKLOADS = {
    "W1": "--clients 10 --msgs 1000 --window 32 --idle-timeout 30 --timeout 120",
    "W2": "--clients 100 --msgs 100 --window 32 --idle-timeout 30 --timeout 120",
    "W3": "--clients 500 --msgs 10 --window 32 --idle-timeout 90 --timeout 180",
    "W4": "--clients 100 --mode paced --rate 500 --duration 10 --idle-timeout 30 --timeout 120",
    "SETUP": "--clients 1000 --msgs 0 --timeout 120",
    "SETUP10": "--clients 1000 --msgs 0 --timeout 120",  # the same at concurrency 10 for both servers
    "STORM": "--clients 1000 --msgs 0 --setup-timeout 30 --timeout 40",
    # issue 15's long workloads: each lasts seconds, so one scheduling hiccup cannot decide it
    "L10": "--clients 10 --msgs 50000 --window 32 --idle-timeout 30 --timeout 300",
    "L100": "--clients 100 --msgs 2000 --window 32 --idle-timeout 30 --timeout 300",
    "L500": "--clients 500 --msgs 200 --window 32 --idle-timeout 60 --timeout 300",
    "ROOMS": "--clients 500 --rooms 10 --senders 50 --msgs 2000 --window 32 --idle-timeout 30 --timeout 300",
    "W4L": "--clients 100 --mode paced --rate 500 --duration 30 --idle-timeout 30 --timeout 120",
    "W4F": "--clients 100 --mode paced --rate 2000 --duration 30 --idle-timeout 30 --timeout 120",
    "C10K": "--clients 10000 --rooms 100 --msgs 0 --setup-timeout 60 --timeout 120",  # 100 per room
    # the same 10,000, then 1,000 of them (10 per room) chat, paced at 500 msgs/s for 30 s, while 9,000 only read:
    # each message reaches 99 others, as in W4, on a server holding 10,000 connections
    "C10KCHAT": ("--clients 10000 --rooms 100 --senders 1000 --mode paced --rate 500 --duration 30 "
                 "--setup-timeout 90 --idle-timeout 30 --timeout 180"),
}
DEFAULT_WORKLOADS = "W1 W2 W3 W4 SETUP SETUP10"
LONG_WORKLOADS = "L10 L100 L500 ROOMS W4L W4F"  # WORKLOADS="$LONG" REPS=5: the table of issue 15
# stored messages per second through the server: 100 two-member rooms, everyone talks (100,000 messages)
STORE_WORKLOAD = "--clients 200 --rooms 100 --msgs 500 --window 32 --idle-timeout 30 --timeout 120"
PARTS = ("loadgen", "storage", "memory", "profile")
OURS = ("chat", "chat-irc")  # our server through its native door, and through its IRC door (--irc-port)
# an A/B in one run: a server named KIND@LABEL (SERVERS="chat-irc chat-irc@main ngircd") is ours through that door,
# started from the `chat` that CHAT_BINS="LABEL=PATH ..." names for LABEL; it alternates with the others like one
CHAT_BINS = dict(pair.split("=", 1) for pair in os.environ.get("CHAT_BINS", "").split())


def door_of(kind: str) -> str:
    """chat, chat-irc or ngircd: what a server name (maybe KIND@LABEL, an A/B variant of ours) runs."""
    return kind.split("@", 1)[0]


def conc_of(server: str, wl: str) -> int:
    if wl == "SETUP10":
        return 10
    if wl in ("STORM", "C10K", "C10KCHAT"):
        return 1000
    return 10 if server == "ngircd" else 1000  # each server's listen backlog, capped at 1000 (as run_peers.sh)


# ------------------------------------------------------------------------------------------ processes


_libc = ctypes.CDLL(None, use_errno=True)
_LIVE: list[subprocess.Popen] = []


def _die_with_parent() -> None:
    _libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: the server goes when the runner goes, however it goes


def spawn(cmd: list[str], log: Path, **kw) -> subprocess.Popen:
    with open(log, "ab") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, preexec_fn=_die_with_parent, **kw)
    _LIVE.append(p)
    return p


def stop(p: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 15.0) -> int:
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(sig)
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    if p in _LIVE:
        _LIVE.remove(p)
    return p.returncode


def stop_all() -> None:
    for p in list(_LIVE):
        stop(p, grace=5.0)


def port_busy(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) in KiB and the thread count, from /proc."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


CLK_TCK = os.sysconf("SC_CLK_TCK")


def busy_ticks() -> int:
    """CPU ticks the whole machine spent busy (not idle, not waiting for I/O) since boot."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(v) - v[3] - v[4]


def proc_ticks(pid: int) -> int:
    """utime + stime of a process, all threads."""
    try:
        rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])
    except (OSError, IndexError, ValueError):
        return 0


class CpuWatch:
    """CPU used during a stretch by everything *except* the server under test, loadgen and this runner, in % of
    one core: other programs on a shared machine (a test suite, a build) that would skew the figures."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.t0 = time.monotonic()
        self.busy0 = busy_ticks()
        self.srv0 = proc_ticks(server_pid)
        self.own0 = sum(os.times()[:4])

    def other_pct(self) -> float:
        wall = time.monotonic() - self.t0
        busy = busy_ticks() - self.busy0
        srv = proc_ticks(self.pid) - self.srv0
        own = (sum(os.times()[:4]) - self.own0) * CLK_TCK  # the runner and its waited children (loadgen)
        return max(0.0, (busy - srv - own) / CLK_TCK / wall * 100) if wall > 0 else 0.0


def wait_for_quiet(limit_pct: float, max_wait: float = 60.0) -> float:
    """Wait (up to max_wait) until other programs use less than limit_pct of a core; return the last reading."""
    deadline = time.monotonic() + max_wait
    while True:
        w = CpuWatch(os.getpid())
        time.sleep(0.5)
        pct = w.other_pct()
        if pct < limit_pct or time.monotonic() > deadline:
            return pct
        time.sleep(1.0)


class Server:
    """One fresh server process: ours (`chat serve`) or ngircd."""

    def __init__(self, kind: str, port: int, db: Path | None = None, fresh: bool = True, log_dir: Path = WORK,
                 serve_cmd: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.kind, self.port, self.db, self.fresh = kind, port, db, fresh
        self.door = door_of(kind)
        # how `chat serve` is started: CHAT_BINS' binary for a KIND@LABEL, else CHAT_SERVE_CMD (e.g. "python
        # benchmarks/experiments/tuned.py"), else CHAT_BIN
        label = kind.partition("@")[2]
        if label and label not in CHAT_BINS:
            raise RuntimeError(f"{kind}: CHAT_BINS names no chat binary for {label!r}")
        self.serve_cmd = serve_cmd or ([CHAT_BINS[label]] if label else os.environ["CHAT_SERVE_CMD"].split()
                                       if os.environ.get("CHAT_SERVE_CMD") else [CHAT_BIN])
        self.env = env or {}
        self.log = log_dir / f"{kind}.log"
        self.proc: subprocess.Popen | None = None
        self.start_s = 0.0
        self.exit_code: int | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def proto(self) -> str:
        return "line" if self.door == "chat" else "irc"  # ngircd, and ours through its IRC door (chat-irc)

    @property
    def ours(self) -> bool:
        return self.door in OURS

    def start(self) -> Server:
        if port_busy(self.port):
            raise RuntimeError(f"port {self.port} is already in use; set CHAT_PORT / NGIRCD_PORT")
        t0 = time.monotonic()
        if self.ours:
            assert self.db is not None
            if self.fresh:
                for suffix in ("", "-wal", "-shm", ".lock"):
                    Path(str(self.db) + suffix).unlink(missing_ok=True)
            cmd = [*self.serve_cmd, "serve", "--db", str(self.db), "--host", "127.0.0.1", "--port", str(self.port),
                   "--rate", "0", "--log-level", "warning"]
            if self.door == "chat-irc":  # loadgen talks to the IRC door; the native one is moved out of its way
                cmd[cmd.index("--port") + 1] = str(self.port + 1)
                cmd += ["--irc-port", str(self.port), "--lobby", ""]
            with open(self.log, "ab") as f:
                f.write(f"\n=== {' '.join(cmd)}\n".encode())
            stdout = self.log.with_suffix(".stdout")
            stdout.unlink(missing_ok=True)
            self.proc = spawn(cmd, stdout, env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
            ready = lambda: "listening on" in stdout.read_text(errors="replace")  # noqa: E731
        else:
            conf = WORK / f"ngircd-{self.port}.conf"
            text = NGIRCD_CONF_SRC.read_text()
            text = re.sub(r"(?m)^(\s*Ports\s*=).*$", rf"\g<1> {self.port}", text)
            conf.write_text(text)
            self.proc = spawn([NGIRCD, "-n", "-f", str(conf)], self.log)
            ready = lambda: port_busy(self.port)  # noqa: E731
        deadline = time.monotonic() + 60
        while not ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                stop(self.proc)
                raise RuntimeError(f"{self.kind} did not start; see {self.log}")
            time.sleep(0.02)
        self.start_s = time.monotonic() - t0
        return self

    def status(self) -> dict[str, int]:
        return proc_status(self.pid)

    def stop(self) -> int:
        if self.proc is not None:
            self.exit_code = stop(self.proc)
            if self.ours:
                with open(self.log, "ab") as f:
                    f.write(self.log.with_suffix(".stdout").read_bytes())
        return self.exit_code if self.exit_code is not None else -1

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------------------------------ loadgen


def parse_kv(line: str) -> dict[str, str]:
    return dict(tok.split("=", 1) for tok in line.split() if "=" in tok)


def loadgen(server: Server, args: str, conc: int, label: str, errlog: Path) -> tuple[dict[str, str], str]:
    cmd = [LOADGEN, "--proto", server.proto, "--port", str(server.port), *args.split(),
           "--conn-concurrency", str(conc), "--server-pid", str(server.pid), "--label", label]
    if server.door == "chat":
        cmd += ["--joined-marker", JOINED_MARKER]
    limit = float(re.search(r"--timeout (\d+)", args).group(1)) + 30  # type: ignore[union-attr]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, preexec_fn=_die_with_parent)
        rc, out, err = r.returncode, r.stdout.strip(), r.stderr
    except subprocess.TimeoutExpired:
        rc, out, err = 124, "status=runner_timeout", ""
    with open(errlog, "a") as f:
        if err:
            f.write(f"--- {label}\n{err}")
    kv = parse_kv(out)
    kv["rc"] = str(rc)
    return kv, out


# ------------------------------------------------------------------------------------------ helpers


def num(v: object) -> float | None:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v: float | None, spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


def log(msg: str) -> None:
    print(msg, flush=True)


def timed(cmd: list[str], timeout: float = 120) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - t0, r


# ------------------------------------------------------------------------------------------ parts


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.out = Path(args.out) if args.out else HERE / "results" / stamp
        self.out.mkdir(parents=True, exist_ok=True)
        self.run_dir = WORK / "run"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.raw = self.out / "raw.txt"
        self.errlog = self.out / "loadgen_stderr.txt"
        self.rows: list[dict[str, str]] = []
        self.storage: dict = {}
        self.memory: dict = {}
        self.profiles: dict[str, str] = {}

    def server(self, kind: str, db: Path | None = None, fresh: bool = True) -> Server:
        port = self.args.chat_port if door_of(kind) in OURS else self.args.ngircd_port
        return Server(kind, port, db or self.run_dir / "chat-bench.sqlite", fresh=fresh, log_dir=self.run_dir)

    # ---- W1-W4, SETUP

    def part_loadgen(self) -> None:
        servers = self.args.servers
        for rep in range(1, self.args.reps + 1):
            order = servers if rep % 2 else list(reversed(servers))  # alternate who goes first
            for wl in self.args.workloads:
                for kind in order:
                    self.one_run(kind, wl, rep)

    def one_run(self, kind: str, wl: str, rep: int) -> dict[str, str]:
        """One fresh server, one loadgen run. If other programs used more than --busy-limit % of a core
        meanwhile, the run is logged to discarded.txt and done again (at most --retries times)."""
        conc = conc_of(kind, wl)
        for attempt in range(1, self.args.retries + 2):
            wait_for_quiet(self.args.busy_limit)
            srv = self.server(kind)
            with srv:
                time.sleep(0.3)
                before = srv.status()
                watch = CpuWatch(srv.pid)
                kv, line = loadgen(srv, WORKLOADS[wl], conc, f"{kind}/{wl}/{rep}", self.errlog)
                other = watch.other_pct()
                st = srv.status()
            code = srv.exit_code
            head = (f"server={kind} wl={wl} rep={rep} conc={conc} rc={kv['rc']} srv_rss_kb={st.get('VmRSS', -1)} "
                    f"srv_rss_before_kb={before.get('VmRSS', -1)} "
                    f"srv_hwm_kb={st.get('VmHWM', -1)} srv_start_s={srv.start_s:.2f} srv_exit={code} "
                    f"other_cpu_pct={other:.0f} attempt={attempt}")
            row = {**parse_kv(line), **parse_kv(head)}
            shown = " ".join(f"{k}={row.get(k, '-')}" for k in ("deliveries_per_s", "lat_p50_ms", "lat_p99_ms",
                                                                 "setup_s", "connect_failed", "status"))
            if other > self.args.busy_limit and attempt <= self.args.retries:
                with open(self.out / "discarded.txt", "a") as f:
                    f.write(f"{head} {line}\n")
                log(f"  {kind:6} {wl:7} rep {rep}: other programs used {other:.0f}% of a core; again")
                time.sleep(2.0)
                continue
            break
        with open(self.raw, "a") as f:
            f.write(f"{head} {line}\n")
        self.rows.append(row)
        log(f"  {kind:6} {wl:7} rep {rep}: {shown} other_cpu={other:.0f}%")
        time.sleep(0.3)
        return row

    # ---- storage

    def part_storage(self) -> None:
        s = self.storage
        log("storage: messages stored per second through the server (100 two-member rooms, 100,000 messages)")
        runs = []
        for rep in range(1, self.args.reps + 1):
            db = self.run_dir / "store.sqlite"
            srv = self.server("chat", db)
            with srv:
                time.sleep(0.3)
                kv, line = loadgen(srv, STORE_WORKLOAD, 1000, f"chat/STORE/{rep}", self.errlog)
            check = verify_stored(db)
            elapsed = num(kv.get("elapsed_s")) or float("nan")
            run = {
                "rep": rep, "status": kv.get("status"), "msgs_sent": int(kv.get("msgs_sent", 0)),
                "rows": check["rows"], "stored_per_s": check["rows"] / elapsed if elapsed else None,
                "deliveries_per_s": num(kv.get("deliveries_per_s")), "lat_p99_ms": num(kv.get("lat_p99_ms")),
                "srv_cpu_pct": num(kv.get("srv_cpu_pct")), "elapsed_s": elapsed, "server_exit": srv.exit_code,
                **{k: v for k, v in check.items() if k != "rows"},
            }
            runs.append(run)
            with open(self.raw, "a") as f:
                f.write(f"server=chat wl=STORE rep={rep} conc=1000 rc={kv['rc']} {line}\n")
            log(f"  rep {rep}: stored {run['rows']:,} rows, {fmt(run['stored_per_s'])} msgs/s stored, "
                f"{fmt(run['deliveries_per_s'])} deliveries/s, check: {check['problems'] or 'ok'}")
        s["stored"] = runs

        log("storage: a room with 1,000,000 messages")
        big = self.run_dir / "big.sqlite"
        s["big_build"] = build_big_db(self, big, self.args.big_messages)
        log(f"  built {big} in {s['big_build']['build_s']:.1f} s ({s['big_build']['size_mb']:.0f} MB)")
        srv = self.server("chat", big, fresh=False)
        with srv:
            s["big_server_start_s"] = srv.start_s
            joins = []
            for i in range(self.args.joins):
                joins.append(clients.time_join(srv.port, "big", f"joiner{i}", json=False))
            for i in range(3):
                joins.append({**clients.time_join(srv.port, "big", f"jjoiner{i}", json=True), "json": 1.0})
            s["joins"] = joins
            s["big_rss_kb"] = srv.status().get("VmRSS")
        text_joins = [j["join_s"] for j in joins if "json" not in j]
        log(f"  server start {srv.start_s:.2f} s; join to end of backlog: median "
            f"{1000 * statistics.median(text_joins):.2f} ms, max {1000 * max(text_joins):.2f} ms "
            f"({int(joins[0]['join_lines'])} lines)")
        cli = {}
        base = [CHAT_BIN, "history", "--db", str(big), "--room", "big"]
        for name, cmd in {
            "chat --version": [CHAT_BIN, "--version"],
            "chat history --limit 50": [*base, "--limit", "50"],
            "chat history --limit 50 --format json": [*base, "--limit", "50", "--format", "json"],
            "chat history --grep needle": [*base, "--grep", "needle"],
            "chat history --grep needle --limit 50": [*base, "--grep", "needle", "--limit", "50"],
            "chat history --grep NOMATCH": [*base, "--grep", "no such text anywhere"],
        }.items():
            times, lines = [], 0
            for _ in range(3):
                t, r = timed(cmd)
                if r.returncode != 0:
                    raise RuntimeError(f"{name} failed: {r.stderr.strip()}")
                times.append(t)
                lines = r.stdout.count("\n")
            cli[name] = {"median_s": statistics.median(times), "max_s": max(times), "lines": lines}
            log(f"  {name}: median {statistics.median(times):.3f} s, {lines} lines")
        s["cli"] = cli

        log("storage: ChatStore.write without the network (store_micro.py)")
        r = subprocess.run([CHAT_PYTHON, str(HERE / "store_micro.py"), str(self.run_dir / "micro.sqlite")],
                           capture_output=True, text=True, timeout=300, cwd=ROOT)
        if r.returncode == 0:
            s["micro"] = json.loads(r.stdout)
            log(f"  {s['micro']}")
        else:
            log(f"  store_micro.py failed: {r.stderr.strip()[-300:]}")

    # ---- memory

    def part_memory(self) -> None:
        m = self.memory
        n = self.args.idle_clients
        # concurrency 10 for both (ngircd's listen backlog: beyond it SYNs are dropped); ours also at 1000, a
        # connect storm, where transient memory (one member tuple per join until the batch is delivered) peaks
        cells = [(kind, conc) for kind in self.args.servers for conc in ((10, 1000) if kind == "chat" else (10,))]
        for kind, conc in cells:
            log(f"memory: {kind}, {n} idle clients, concurrency {conc}")
            with self.server(kind) as srv:
                proto = srv.proto
                warm = clients.IdleClients(srv.port, 10, proto, prefix="warm")
                warm.open()
                warm.close()
                time.sleep(1.0)
                before = srv.status()
                idle = clients.IdleClients(srv.port, n, proto, concurrency=conc)
                took = idle.open()
                idle.drain(1.0)
                during = srv.status()
                idle.close()
                time.sleep(2.0)
                after = srv.status()
                # a second crowd: the memory of the first is reused, not added to
                again = clients.IdleClients(srv.port, n, proto, prefix="again", concurrency=conc)
                again.open()
                again.drain(1.0)
                second = srv.status()
                again.close()
            per = (during["VmRSS"] - before["VmRSS"]) / n
            m.setdefault("idle", []).append({
                "server": kind, "concurrency": conc, "clients": n, "rss_before_kb": before["VmRSS"],
                "rss_with_clients_kb": during["VmRSS"], "rss_after_close_kb": after["VmRSS"],
                "rss_second_crowd_kb": second["VmRSS"], "per_client_kb": per, "open_s": took,
                "connect_failed": idle.connect_failed + again.connect_failed, "threads": during.get("Threads"),
            })
            log(f"  RSS {before['VmRSS']} KiB -> {during['VmRSS']} KiB with {n} clients ({per:.1f} KiB each), "
                f"{after['VmRSS']} KiB after they left, {second['VmRSS']} KiB with {n} others")
        for kind in self.args.servers:
            log(f"memory: {kind}, W2 {self.args.growth_runs} times against one server process")
            rss = []
            with self.server(kind) as srv:
                base = srv.status()["VmRSS"]
                for i in range(1, self.args.growth_runs + 1):
                    kv, _ = loadgen(srv, WORKLOADS["W2"], conc_of(kind, "W2"), f"{kind}/GROWTH/{i}", self.errlog)
                    time.sleep(1.0)
                    rss.append(srv.status()["VmRSS"])
                    log(f"  run {i}: status={kv.get('status')} deliveries/s={kv.get('deliveries_per_s')} "
                        f"RSS {rss[-1]} KiB")
            m.setdefault("growth", {})[kind] = {"rss_start_kb": base, "rss_after_each_kb": rss}

    # ---- profile

    def part_profile(self) -> None:
        if not PYSPY or not os.access(PYSPY, os.X_OK):
            log("profile: py-spy not found, skipped")
            return
        runs = self.args.profile_runs
        # (workload, runs, py-spy mode): "cpu" samples every thread that is on a CPU (time in send() and in
        # SQLite included); "gil" only the thread holding the GIL, i.e. who uses the one core Python code gets
        for wl, times, mode in (("W2", runs, "cpu"), ("W3", max(3, runs // 2), "cpu"), ("W2", runs, "gil"),
                                ("W2", runs, "native")):
            name = f"{wl}-{mode}"
            raw = self.out / f"profile-{name}.raw"
            with self.server("chat") as srv:
                cmd = [PYSPY, "record", "--pid", str(srv.pid), "--rate", "250", "--function", "--threads",
                       "--format", "raw", "--output", str(raw)]
                if mode in ("gil", "native"):
                    cmd.append("--gil")
                if mode == "native":
                    cmd.append("--native")  # C frames too: shows the garbage collector and SQLite
                spy = spawn(cmd, self.out / f"py-spy-{name}.log")
                time.sleep(1.0)
                for i in range(times):
                    # a new room each run, as in a fresh server: no backlog for the joiners to receive
                    loadgen(srv, f"{WORKLOADS[wl]} --room-prefix bench{i}r", 1000, f"chat/PROFILE-{name}/{i}",
                            self.errlog)
                stop(spy, signal.SIGINT, grace=30)
            if raw.exists():
                self.profiles[name] = pyspy_top.summarise(raw, top=15,
                                                          title=f"{wl} × {times} runs, {PROFILE_TITLES[mode]}")
                log(f"profile: {name} written to {raw}")
            else:
                log(f"profile: py-spy wrote nothing for {name}; see {self.out / f'py-spy-{name}.log'}")

    # ---- report

    def cell(self, kind: str, wl: str) -> list[dict[str, str]]:
        return [r for r in self.rows if r.get("server") == kind and r.get("wl") == wl]

    def med(self, kind: str, wl: str, key: str) -> float | None:
        return median([num(r.get(key)) for r in self.cell(kind, wl)])

    def meta(self) -> dict:
        """What the report says about the run itself, saved as meta.json so --report can redo the summary."""
        a = self.args
        serve = os.environ.get("CHAT_SERVE_CMD")
        command = (f"`{' '.join(['benchmarks/run.sh', *sys.argv[1:]])}` with PARTS={','.join(a.parts)} "
                   f"REPS={a.reps} WORKLOADS=\"{' '.join(a.workloads)}\" SERVERS=\"{' '.join(a.servers)}\""
                   + (f" CHAT_SERVE_CMD=\"{serve}\" (**not the stock server**)" if serve else "")
                   + (f" CHAT_BINS=\"{os.environ['CHAT_BINS']}\"" if os.environ.get("CHAT_BINS") else ""))
        return {"machine": machine_info(), "command": command, "reps": a.reps, "workloads": a.workloads,
                "servers": a.servers, "parts": a.parts, "busy_limit": a.busy_limit, "retries": a.retries,
                "profile_runs": a.profile_runs}

    def report(self) -> str:
        meta = json.loads((self.out / "meta.json").read_text())
        out = [f"# Benchmark run {self.out.name}\n", meta["machine"], ""]
        out.append(f"Command: {meta['command']}\n")
        if self.rows:
            out += self.report_loadgen()
        if self.storage:
            out += self.report_storage()
        if self.memory:
            out += self.report_memory()
        if self.profiles:
            out.append("## Profile (py-spy, our server)\n")
            out += [p for p in self.profiles.values()]
        if "run_minutes" in meta:
            out.append(f"\nRun time: {meta['run_minutes']} min.")
        return "\n".join(out) + "\n"

    def report_loadgen(self) -> list[str]:
        a = self.args
        ours, peer = ("chat" if "chat" in a.servers else "chat-irc"), "ngircd"
        both = ours in a.servers and peer in a.servers
        out = [f"## Ours vs ngircd (median of {a.reps} runs; every message of ours stored before delivery)\n"]
        out.append("| workload | ours (chat) | ngircd | ratio ours/ngircd | worst single-run ratio | target | met |")
        out.append("|---|--:|--:|--:|--:|---|---|")

        def pair(wl: str, key: str) -> list[tuple[float | None, float | None]]:
            a_rows = {r["rep"]: num(r.get(key)) for r in self.cell(ours, wl)}
            b_rows = {r["rep"]: num(r.get(key)) for r in self.cell(peer, wl)}
            return [(a_rows[k], b_rows[k]) for k in a_rows if k in b_rows]

        def ratios(wl: str, key: str, invert: bool = False) -> tuple[float | None, float | None]:
            x, y = self.med(ours, wl, key), self.med(peer, wl, key)
            r = x / y if x and y else None
            per = [p / q for p, q in pair(wl, key) if p and q]
            worst = (min(per) if not invert else max(per)) if per else None
            return r, worst

        for wl, label in (("W1", "W1 deliveries/s (10 × 1000)"), ("W2", "W2 deliveries/s (100 × 100)"),
                          ("W3", "W3 deliveries/s (500 × 10)")):
            if not self.cell(ours, wl):
                continue
            r, worst = ratios(wl, "deliveries_per_s") if both else (None, None)
            goal = "≥ 0.5 (goal > 1)" if wl != "W1" else "≥ 0.5"
            met = "-" if r is None else ("yes" if r >= 0.5 and (worst or 0) >= 0.5 else "no")
            out.append(f"| {label} | {fmt(self.med(ours, wl, 'deliveries_per_s'))} | "
                       f"{fmt(self.med(peer, wl, 'deliveries_per_s'))} | {fmt(r, '.2f')} | {fmt(worst, '.2f')} | "
                       f"{goal} | {met} |")
        if self.cell(ours, "W4"):
            p99 = self.med(ours, "W4", "lat_p99_ms")
            worst99 = max((num(r.get("lat_p99_ms")) or 0) for r in self.cell(ours, "W4"))
            out.append(f"| W4 latency p50 / p99 ms (100 clients, 500 msgs/s) | "
                       f"{fmt(self.med(ours, 'W4', 'lat_p50_ms'), '.2f')} / {fmt(p99, '.2f')} | "
                       f"{fmt(self.med(peer, 'W4', 'lat_p50_ms'), '.2f')} / "
                       f"{fmt(self.med(peer, 'W4', 'lat_p99_ms'), '.2f')} | "
                       f"- | worst p99 {worst99:.2f} ms | p99 < 5 ms | {'yes' if worst99 < 5 else 'no'} |")
        for wl, label in (("SETUP", "1000-client connect + join, s (concurrency: ours 1000, ngircd 10)"),
                          ("SETUP10", "1000-client connect + join, s (concurrency 10 for both)")):
            if not self.cell(ours, wl):
                continue
            r, worst = ratios(wl, "setup_s", invert=True) if both else (None, None)
            refused = max(int(num(x.get("connect_failed")) or 0) for x in self.cell(ours, wl))
            joined = min(int(num(x.get("joined")) or 0) for x in self.cell(ours, wl))
            met = "-" if r is None else ("yes" if r <= 2 and (worst or 9) <= 2 and refused == 0 and joined == 1000
                                         else "no")
            out.append(f"| {label} | {fmt(self.med(ours, wl, 'setup_s'), '.2f')} | "
                       f"{fmt(self.med(peer, wl, 'setup_s'), '.2f')} | {fmt(r, '.2f')} | {fmt(worst, '.2f')} | "
                       f"≤ 2× ngircd's time, none refused (ours: {refused} refused, {joined} joined) | {met} |")
        out.append("")
        out.append("Ratios are ours ÷ ngircd's (for setup times, ours ÷ ngircd's time, so lower is better); "
                   "the worst single-run ratio pairs rep *i* of ours with rep *i* of ngircd.\n")

        out += self.report_variants(peer)
        out += self.report_long(ours, peer)
        out.append("### Every cell (median of reps; lost/dups/reordered/disconnects: worst rep)\n")
        out.append("| server | workload | conc | msgs/s | deliveries/s | elapsed s | lat p50 ms | lat p99 ms | "
                   "lat max ms | setup s | server CPU % | loadgen CPU % | server RSS after, MiB | "
                   "lost/dups/reord/disc | runs ok | other programs' CPU %, max |")
        out.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|")
        for wl in a.workloads:
            for kind in a.servers:
                rs = self.cell(kind, wl)
                if not rs:
                    continue

                def worst(key: str, rows: list[dict[str, str]] = rs) -> int:
                    return max(int(num(r.get(key)) or 0) for r in rows)

                ok = sum(1 for r in rs if r.get("status") == "ok")
                rss = self.med(kind, wl, "srv_rss_kb")
                cpu = median([v for v in (num(r.get("srv_cpu_pct")) for r in rs) if v is not None and v >= 0])
                out.append(
                    f"| {kind} | {wl} | {rs[0].get('conc')} | {fmt(self.med(kind, wl, 'msgs_per_s'))} | "
                    f"{fmt(self.med(kind, wl, 'deliveries_per_s'))} | {fmt(self.med(kind, wl, 'elapsed_s'), '.3f')} | "
                    f"{fmt(self.med(kind, wl, 'lat_p50_ms'), '.2f')} | "
                    f"{fmt(self.med(kind, wl, 'lat_p99_ms'), '.2f')} | "
                    f"{fmt(self.med(kind, wl, 'lat_max_ms'), '.2f')} | {fmt(self.med(kind, wl, 'setup_s'), '.2f')} | "
                    f"{fmt(cpu)} | {fmt(self.med(kind, wl, 'lg_cpu_pct'))} | "
                    f"{fmt(rss / 1024 if rss else None, '.1f')} | "
                    f"{worst('lost')}/{worst('dups')}/{worst('reordered')}/{worst('disconnects')} | {ok}/{len(rs)} | "
                    f"{worst('other_cpu_pct')} |")
        out.append("")
        noisy = [r for r in self.rows if (num(r.get("other_cpu_pct")) or 0) > a.busy_limit]
        if noisy:
            out.append(f"**Noise:** {len(noisy)} of {len(self.rows)} runs were kept although other programs used more "
                       f"than {a.busy_limit:.0f}% of a core meanwhile (after {a.retries} retries): "
                       + ", ".join(f"{r['server']} {r['wl']} rep {r['rep']} ({r['other_cpu_pct']}%)" for r in noisy)
                       + ". Runs redone because of it are in discarded.txt.\n")
        return out

    def report_variants(self, peer: str) -> list[str]:
        """An A/B in one run (a KIND@LABEL among the servers): each of ours beside the others and ngircd."""
        a = self.args
        variants = [k for k in a.servers if door_of(k) in OURS]
        if not any("@" in k for k in variants):
            return []
        out = ["### A/B: each of ours in the same run (min / median / max of the reps)\n",
               "| workload | server | chat | deliveries/s | ÷ ngircd (medians) | lat p99 ms | server CPU s |",
               "|---|---|---|--:|--:|--:|--:|"]

        def spread(kind: str, wl: str, key: str, spec: str) -> str:
            values = sorted(v for v in (num(r.get(key)) for r in self.cell(kind, wl)) if v is not None)
            if not values:
                return "-"
            return " / ".join(fmt(v, spec) for v in (values[0], statistics.median(values), values[-1]))

        for wl in a.workloads:
            for kind in variants:
                if not self.cell(kind, wl):
                    continue
                mine, theirs = self.med(kind, wl, "deliveries_per_s"), self.med(peer, wl, "deliveries_per_s")
                ratio = mine / theirs if mine and theirs else None
                label = kind.partition("@")[2]
                binary = CHAT_BINS.get(label, "") if label else CHAT_BIN
                out.append(f"| {wl} | {kind} | `{binary}` | {spread(kind, wl, 'deliveries_per_s', ',.0f')} | "
                           f"{fmt(ratio, '.2f')} | {spread(kind, wl, 'lat_p99_ms', '.2f')} | "
                           f"{spread(kind, wl, 'srv_cpu_run_s', '.2f')} |")
        out.append("")
        return out

    def report_long(self, ours: str, peer: str) -> list[str]:
        """Issue 15's table: the long workloads, min / median / max across reps for both servers."""
        def spread(kind: str, wl: str, key: str, spec: str = ",.0f") -> str:
            values = sorted(v for v in (num(r.get(key)) for r in self.cell(kind, wl)) if v is not None)
            if not values:
                return "-"
            return " / ".join(fmt(v, spec) for v in (values[0], median(values), values[-1]))  # type: ignore[arg-type]

        out: list[str] = []
        bursts = [wl for wl in ("L10", "L100", "L500", "ROOMS") if self.cell(ours, wl)]
        if bursts:
            out.append("### Long bursts: deliveries/s, min / median / max\n")
            out.append("| workload | loadgen arguments | ours (chat) | ngircd | ratio of medians | worst single-run "
                       "ratio | lost/dups/reord/disc, ours (worst) |")
            out.append("|---|---|--:|--:|--:|--:|---|")
            for wl in bursts:
                x, y = self.med(ours, wl, "deliveries_per_s"), self.med(peer, wl, "deliveries_per_s")
                per = [a / b for a, b in self._pairs(ours, peer, wl, "deliveries_per_s") if a and b]
                rs = self.cell(ours, wl)
                bad = "/".join(str(max(int(num(r.get(k)) or 0) for r in rs))
                               for k in ("lost", "dups", "reordered", "disconnects"))
                args = " ".join(a for a in WORKLOADS[wl].split() if not a.startswith("--") or a in
                                ("--clients", "--msgs", "--rooms", "--senders"))
                out.append(f"| {wl} | {args} | {spread(ours, wl, 'deliveries_per_s')} | "
                           f"{spread(peer, wl, 'deliveries_per_s')} | {fmt(x / y if x and y else None, '.2f')} | "
                           f"{fmt(min(per) if per else None, '.2f')} | {bad} |")
            out.append("")
        paced = [wl for wl in ("W4", "W4L", "W4F", "C10KCHAT") if self.cell(ours, wl)]
        if paced:
            out.append("### Paced latency, ms: min / median / max across runs (loadgen reports p50, p90, p99 and "
                       "the maximum; the maximum bounds p99.9)\n")
            out.append("| workload | server | p50 | p99 | max | msgs/s |")
            out.append("|---|---|--:|--:|--:|--:|")
            for wl in paced:
                for kind in (ours, peer):
                    if self.cell(kind, wl):
                        out.append(f"| {wl} | {kind} | {spread(kind, wl, 'lat_p50_ms', '.2f')} | "
                                   f"{spread(kind, wl, 'lat_p99_ms', '.2f')} | "
                                   f"{spread(kind, wl, 'lat_max_ms', '.2f')} | {spread(kind, wl, 'msgs_per_s')} |")
            out.append("")
        for wl in [w for w in ("C10K", "C10KCHAT") if self.cell(ours, w)]:
            out.append(f"### {wl}: 10,000 clients connect, register and join 100 rooms (concurrency 1000)"
                       f"{', then 1,000 of them chat at 500 msgs/s' if wl == 'C10KCHAT' else ''}\n")
            out.append("| server | setup s (min / median / max) | joined (worst) | refused (worst) | "
                       "RSS per client, KiB (median) |")
            out.append("|---|--:|--:|--:|--:|")
            for kind in (ours, peer):
                rs = self.cell(kind, wl)
                if not rs:
                    continue
                grown = median([(num(r.get("srv_rss_kb")) or 0) - (num(r.get("srv_rss_before_kb")) or 0)
                                for r in rs])
                out.append(f"| {kind} | {spread(kind, wl, 'setup_s', '.2f')} | "
                           f"{min(int(num(r.get('joined')) or 0) for r in rs)} | "
                           f"{max(int(num(r.get('connect_failed')) or 0) for r in rs)} | "
                           f"{fmt(grown / 10000 if grown else None, '.1f')} |")
            out.append("")
        return out

    def _pairs(self, ours: str, peer: str, wl: str, key: str) -> list[tuple[float | None, float | None]]:
        a_rows = {r["rep"]: num(r.get(key)) for r in self.cell(ours, wl)}
        b_rows = {r["rep"]: num(r.get(key)) for r in self.cell(peer, wl)}
        return [(a_rows[k], b_rows[k]) for k in a_rows if k in b_rows]

    def report_storage(self) -> list[str]:
        s = self.storage
        out = ["## Storage (ours)\n", "| measure | result | target | met |", "|---|--:|---|---|"]
        runs = s.get("stored", [])
        if runs:
            rate = median([r["stored_per_s"] for r in runs])
            worst = min(r["stored_per_s"] or 0 for r in runs)
            deliv = median([r["deliveries_per_s"] for r in runs])
            problems = [r["problems"] for r in runs if r["problems"]]
            out.append(f"| messages stored per second through the server (200 clients in 100 two-member rooms, "
                       f"100,000 messages; rows counted in the database ÷ time to the last delivery; median of "
                       f"{len(runs)}, worst {worst:,.0f}) | {rate:,.0f} msgs/s ({deliv:,.0f} deliveries/s) | "
                       f"≥ 50,000 | {'yes' if worst >= 50000 else 'no'} |")
            out.append(f"| database check after each of those runs: every message stored once, each sender's in "
                       f"order, no gap | {'ok' if not problems else '; '.join(problems)} | all ok | "
                       f"{'yes' if not problems else 'no'} |")
        joins = s.get("joins", [])
        if joins:
            text = [j["join_s"] * 1000 for j in joins if "json" not in j]
            js = [j["join_s"] * 1000 for j in joins if "json" in j]
            pages = [j["page_s"] * 1000 for j in joins if "page_s" in j]
            n = s["big_build"]["messages"]
            out.append(f"| `/join` a room holding {n:,} messages → end of its backlog "
                       f"({int(joins[0]['join_lines']) - 2} messages + join lines), text; median of {len(text)} | "
                       f"{statistics.median(text):.2f} ms (max {max(text):.2f}) | < 50 ms | "
                       f"{'yes' if max(text) < 50 else 'no'} |")
            out.append(f"| the same in JSON (`history_end`); median of {len(js)} | {statistics.median(js):.2f} ms "
                       f"(max {max(js):.2f}) | < 50 ms | {'yes' if max(js) < 50 else 'no'} |")
            out.append(f"| then `/history` (the next 50, read from the database by the server) | "
                       f"{statistics.median(pages):.2f} ms (max {max(pages):.2f}) | - | - |")
            out.append(f"| `chat serve` start on that database (spawn → listening) | {s['big_server_start_s']:.2f} s "
                       f"| - | - |")
        for name, c in s.get("cli", {}).items():
            target = "< 1 s" if name == "chat history --limit 50" else "-"
            met = ("yes" if c["max_s"] < 1 else "no") if target != "-" else "-"
            where = "(process start alone, for scale)" if name == "chat --version" else "on it, whole process,"
            out.append(f"| `{name}` {where} median of 3 ({c['lines']} lines) | "
                       f"{c['median_s']:.3f} s (max {c['max_s']:.3f}) | {target} | {met} |")
        if "big_build" in s:
            b = s["big_build"]
            out.append(f"| (building that database: {b['messages']:,} rows inserted with sqlite3 into a schema "
                       f"made by `chat serve`) | {b['build_s']:.1f} s, {b['size_mb']:.0f} MB | - | - |")
        out.append("")
        if "micro" in s:
            mc = s["micro"]
            out.append("Write path without the network (`store_micro.py`: `ChatStore.write` as the writer thread "
                       "calls it, vs the same rows through `sqlite3` executemany), messages/s by batch size:\n")
            sizes = list(mc["chatstore"])
            out.append("| path | " + " | ".join(f"batch {b}" for b in sizes) + " |")
            out.append("|---|" + "--:|" * len(sizes))
            for k, label in (("chatstore", "ChatStore.write (SQLAlchemy Core)"), ("sqlite3", "sqlite3 alone")):
                out.append(f"| {label} | " + " | ".join(f"{mc[k][b]:,}" for b in sizes) + " |")
            out.append("")
        return out

    def report_memory(self) -> list[str]:
        m = self.memory
        out = ["## Memory\n"]
        if "idle" in m:
            out.append("| server | idle clients | connect concurrency | RSS before, MiB | RSS with them, MiB | "
                       "**per idle client, KiB** | RSS after they left, MiB | RSS with another crowd as large, MiB |")
            out.append("|---|--:|--:|--:|--:|--:|--:|--:|")
            for v in m["idle"]:
                out.append(f"| {v['server']} | {v['clients']} | {v['concurrency']} | {v['rss_before_kb'] / 1024:.1f} | "
                           f"{v['rss_with_clients_kb'] / 1024:.1f} | **{v['per_client_kb']:.1f}** | "
                           f"{v['rss_after_close_kb'] / 1024:.1f} | {v['rss_second_crowd_kb'] / 1024:.1f} |")
            out.append("\nIdle client: connected, registered, in one room (ours: the lobby, joined on registration; "
                       "ngircd: `JOIN #lobby`), all output read. Per client = (RSS with them − RSS before) ÷ clients. "
                       "At concurrency 1000 the figure is the peak of a connect storm (RSS is not given back), "
                       "not what each client keeps.\n")
        if "growth" in m:
            out.append("| server | RSS at start, MiB | RSS after each W2 run against the same process, MiB | "
                       "growth over the second half of the runs, MiB |")
            out.append("|---|--:|---|--:|")
            for kind, v in m["growth"].items():
                rss = v["rss_after_each_kb"]
                half = len(rss) // 2
                grow = (rss[-1] - rss[half - 1]) / 1024 if half else 0.0
                out.append(f"| {kind} | {v['rss_start_kb'] / 1024:.1f} | "
                           f"{', '.join(f'{x / 1024:.1f}' for x in rss)} | {grow:+.2f} |")
            out.append("")
        return out


def verify_stored(db: Path) -> dict:
    """After a loadgen run on our server: every BENCH message is in the database once, and each sender's messages
    have ids in the order they were sent, with no sequence number missing."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT id, text FROM messages WHERE text LIKE 'BENCH:%' ORDER BY id").fetchall()
    finally:
        conn.close()
    last: dict[int, int] = {}
    seen = set()
    dups = gaps = disorder = 0
    for _id, text in rows:
        _, sender, seq, _ts = text.split(" ", 1)[0].split(":")
        key = (int(sender), int(seq))
        if key in seen:
            dups += 1
            continue
        seen.add(key)
        prev = last.get(key[0], -1)
        if key[1] < prev:
            disorder += 1
        elif key[1] > prev + 1:
            gaps += key[1] - prev - 1
        last[key[0]] = max(prev, key[1])
    problems = []
    if dups:
        problems.append(f"{dups} duplicates")
    if gaps:
        problems.append(f"{gaps} missing")
    if disorder:
        problems.append(f"{disorder} out of order")
    return {"rows": len(rows), "senders": len(last), "problems": ", ".join(problems)}


def build_big_db(runner: Runner, db: Path, n: int) -> dict:
    """A database with room #big holding n messages: the schema and the room come from the real server (one
    client joins #big and says one line), the other n-1 rows are inserted with sqlite3 in the same format."""
    t0 = time.monotonic()
    srv = runner.server("chat", db)
    with srv:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(b"/nick seeder\n/join big\nthe first message of #big\n")
        buf = b""
        deadline = time.monotonic() + 20
        while b"seeder: the first message of #big" not in buf and time.monotonic() < deadline:
            buf += s.recv(65536)
        s.sendall(b"/quit\n")
        s.close()
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        room_id, = conn.execute("SELECT id FROM rooms WHERE name_key = 'big'").fetchone()
        first_id, created = conn.execute("SELECT max(id), max(created_at) FROM messages").fetchone()
        base = dt.datetime.fromisoformat(created)
        step = dt.timedelta(milliseconds=1)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN IMMEDIATE")
        chunk = 100_000
        needles = 0
        for start in range(1, n, chunk):
            rows = []
            for i in range(start, min(n, start + chunk)):
                text = f"message {i} in a long history, lorem ipsum dolor sit amet"
                if i % 10_000 == 0:
                    text += " needle"
                    needles += 1
                rows.append((first_id + i, "message", room_id, f"user{i % 97}", None, text,
                             (base + i * step).isoformat(sep=" ", timespec="microseconds")))
            conn.executemany("INSERT INTO messages (id, kind, room_id, sender, recipient, text, created_at) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        count, = conn.execute("SELECT count(*) FROM messages WHERE room_id = ?", (room_id,)).fetchone()
    finally:
        conn.close()
    return {"messages": count, "needles": needles, "build_s": time.monotonic() - t0,
            "size_mb": db.stat().st_size / 1e6}


def machine_info() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    osname = "?"
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip('"')
    chat_ver = subprocess.run([CHAT_BIN, "--version"], capture_output=True, text=True).stdout.strip()
    py = subprocess.run([CHAT_PYTHON, "-c", "import sys, sqlite3, sqlalchemy; print(sys.version.split()[0], "
                         "sqlite3.sqlite_version, sqlalchemy.__version__)"], capture_output=True, text=True)
    pyv, sqlv, sav = [*py.stdout.split(), "?", "?", "?"][:3]
    ng = subprocess.run([NGIRCD, "--version"], capture_output=True, text=True).stdout.split("\n")[0].split("-")[0]
    git = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"], capture_output=True,
                         text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "chat", "cli", "migrations"],
                           capture_output=True, text=True).stdout.strip()
    return (f"Machine: {osname}, Linux {platform.release()}, {os.cpu_count()} CPUs ({cpu}), {mem} RAM. "
            f"{chat_ver} on CPython {pyv}, SQLite {sqlv}, SQLAlchemy {sav}; {ng.strip()}; loadgen from "
            f"../shared/bench (gcc -O2). Code: {git}{' + uncommitted server changes' if dirty else ''}. "
            f"All traffic on 127.0.0.1; loadgen and the server share the 2 cores.")


PROFILE_TITLES = {"cpu": "on-CPU samples, all threads", "gil": "GIL holder only (py-spy --gil)",
                  "native": "GIL holder with C frames (py-spy --gil --native)"}


def regenerate(out: Path) -> None:
    """Write summary.md of an earlier run again (after a change to the report), from what it saved."""
    meta = json.loads((out / "meta.json").read_text())
    args = argparse.Namespace(**{**meta, "out": str(out)})
    runner = Runner.__new__(Runner)
    runner.args, runner.out = args, out
    runner.rows = [parse_kv(line) for line in (out / "raw.txt").read_text().splitlines()
                   if line.startswith("server=") and " wl=STORE " not in line] if (out / "raw.txt").exists() else []
    runner.storage = json.loads((out / "storage.json").read_text()) if (out / "storage.json").exists() else {}
    runner.memory = json.loads((out / "memory.json").read_text()) if (out / "memory.json").exists() else {}
    runner.profiles = {}
    for raw in sorted(out.glob("profile-*.raw"), key=lambda p: ("cpu", "gil", "native").index(p.stem.split("-")[-1])
                      if p.stem.split("-")[-1] in PROFILE_TITLES else 9):
        wl, mode = raw.stem.split("-")[1:3]
        times = meta["profile_runs"] if wl == "W2" else max(3, meta["profile_runs"] // 2)
        runner.profiles[raw.stem] = pyspy_top.summarise(raw, top=15, title=f"{wl} × {times} runs, "
                                                        f"{PROFILE_TITLES.get(mode, mode)}")
    summary = runner.report()
    (out / "summary.md").write_text(summary)
    print(summary)


def main() -> None:
    env = os.environ.get
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default=env("PARTS", ",".join(PARTS)),
                    help="comma-separated: loadgen,storage,memory,profile (env PARTS; default all)")
    ap.add_argument("--reps", type=int, default=int(env("REPS", "3")), help="runs per cell (env REPS; 3)")
    ap.add_argument("--workloads", default=env("WORKLOADS", DEFAULT_WORKLOADS),
                    help=f"loadgen workloads, of {' '.join(WORKLOADS)} (env WORKLOADS; default {DEFAULT_WORKLOADS})")
    ap.add_argument("--servers", default=env("SERVERS", "chat ngircd"), help="env SERVERS; default 'chat ngircd'")
    ap.add_argument("--chat-port", type=int, default=int(env("CHAT_PORT", "16690")))
    ap.add_argument("--ngircd-port", type=int, default=int(env("NGIRCD_PORT", "16667")))
    ap.add_argument("--big-messages", type=int, default=int(env("BIG_MESSAGES", "1000000")))
    ap.add_argument("--joins", type=int, default=5, help="timed joins of the big room (text; plus 3 in JSON)")
    ap.add_argument("--idle-clients", type=int, default=int(env("IDLE_CLIENTS", "1000")))
    ap.add_argument("--growth-runs", type=int, default=int(env("GROWTH_RUNS", "10")))
    ap.add_argument("--profile-runs", type=int, default=int(env("PROFILE_RUNS", "20")),
                    help="W2 runs under py-spy (W3: half as many)")
    ap.add_argument("--busy-limit", type=float, default=float(env("BUSY_LIMIT", "25")),
                    help="a loadgen run during which other programs used more than this %% of a core is done "
                         "again (env BUSY_LIMIT; 25)")
    ap.add_argument("--retries", type=int, default=int(env("RETRIES", "2")),
                    help="how many times such a run is done again at most (env RETRIES; 2)")
    ap.add_argument("--max-minutes", type=float, default=float(env("MAX_MINUTES", "40")),
                    help="stop everything after this long (env MAX_MINUTES; 40)")
    ap.add_argument("--out", default=env("OUT"), help="results folder (default benchmarks/results/<time>)")
    ap.add_argument("--report", metavar="RESULTS_DIR",
                    help="only write RESULTS_DIR/summary.md again from its raw.txt, *.json and profiles")
    ap.add_argument("--save-summary", choices=("auto", "yes", "no"), default=env("SAVE_SUMMARY", "auto"),
                    help="copy summary.md to benchmarks/LAST_RUN.md (auto: after a full run with ≥ 3 reps)")
    args = ap.parse_args()
    args.parts = [p for p in re.split(r"[,\s]+", args.parts) if p]
    args.workloads = args.workloads.split()
    args.servers = args.servers.split()
    bad = [p for p in args.parts if p not in PARTS] + [w for w in args.workloads if w not in WORKLOADS]
    if bad:
        ap.error(f"unknown part or workload: {' '.join(bad)}")
    if not os.access(LOADGEN, os.X_OK):
        ap.error(f"no loadgen at {LOADGEN}; start through benchmarks/run.sh, which builds it")

    def on_signal(signum: int, _frame: object) -> None:
        raise SystemExit(f"stopped by {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(int(args.max_minutes * 60))
    if args.report:
        regenerate(Path(args.report))
        return
    runner = Runner(args)
    (runner.out / "meta.json").write_text(json.dumps(runner.meta(), indent=1))
    log(f"results in {runner.out}")
    t0 = time.monotonic()
    try:
        for part in PARTS:
            if part in args.parts:
                log(f"== {part}")
                getattr(runner, f"part_{part}")()
    finally:
        stop_all()
        signal.alarm(0)
        for name, data in (("storage", runner.storage), ("memory", runner.memory)):
            if data:
                (runner.out / f"{name}.json").write_text(json.dumps(data, indent=1))
        meta_path = runner.out / "meta.json"
        meta = json.loads(meta_path.read_text())
        meta["run_minutes"] = round((time.monotonic() - t0) / 60, 1)
        meta_path.write_text(json.dumps(meta, indent=1))
        summary = runner.report()
        (runner.out / "summary.md").write_text(summary)
        latest = HERE / "results" / "latest"
        if runner.out.parent == latest.parent:
            with contextlib.suppress(OSError):
                if latest.is_symlink() or latest.exists():
                    latest.unlink()
                latest.symlink_to(runner.out.name)
        full = set(args.parts) == set(PARTS) and args.reps >= 3 and set(args.servers) == {"chat", "ngircd"}
        if args.save_summary == "yes" or (args.save_summary == "auto" and full):
            (HERE / "LAST_RUN.md").write_text(summary)
        print("\n" + summary)


if __name__ == "__main__":
    main()
