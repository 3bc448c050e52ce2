#!/usr/bin/env python3
"""Clustered nodes on one PostgreSQL (docs/CLUSTER.md): cross-node latency, and what clustering costs.

    .venv/bin/python benchmarks/cluster.py [--rate 500] [--seconds 10] [--clients 10] [--messages 300] [--rounds 1]

One command for every figure of the issue's benchmark (about a minute per round on a quiet machine). Creates a
database of its own per measurement on CHAT_TEST_POSTGRES_URL's server (`h_cluster_bench_…`, dropped at the end),
prints a summary table on stderr and one JSON object on stdout:
- `machine`: the cores, the load average before and after (a shared machine skews wall-clock figures: say so), the
  commit measured.
- `latency`: one sender on node A at `--rate` messages a second for `--seconds`, one receiver on node B; each
  message's latency from its send until B delivers it (p50, p99, p99.9, max, in ms; `n` of `sent` arrived).
  Delivered means stored: this
  includes A's commit, the NOTIFY, B's read of the room's events, and B's send. The same with both clients on one
  clustered node, and on a single server without --cluster, as the baseline.
- `throughput`: `--clients` clients in one room, spread over 1, 2 or 3 nodes (and a single server without
  --cluster), each sending `--messages` lines as fast as the server takes them; deliveries per second until every
  client has every message. On a 2-core machine shared with other work this measures the overhead of
  clustering, not scaling: every node competes for the same two cores as PostgreSQL and the clients.
`--rounds N` repeats the whole set N times, interleaved (single, same-node, cross-node, then the throughputs,
then again), so that a change in the machine's load touches every mode alike. Loopback only; the servers are
killed on exit, however the script ends.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get("CHAT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def chat_bin() -> list[str]:
    script = Path(sys.executable).with_name("chat")
    return [str(script)] if script.exists() else [sys.executable, "-m", "chat"]


class Node:
    def __init__(self, db: str, *args: str) -> None:
        self.proc = subprocess.Popen([*chat_bin(), "serve", "--db", db, "--port", "0", "--rate", "0",
                                      "--log-level", "warning", "--sendq", str(64 << 20), *args],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        match = re.search(r":(\d+)", line.split(" listening on ")[1]) if " listening on " in line else None
        if match is None:
            self.proc.kill()
            raise SystemExit(f"chat serve did not start: {line!r}")
        self.port = int(match.group(1))

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


class Client:
    def __init__(self, port: int, nick: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")
        self.sock.sendall(f"/format json\n{nick}\n".encode())
        while b'"type":"joined"' not in self.file.readline():
            pass

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def messages(self):  # type: ignore[no-untyped-def]
        for line in self.file:
            if line.startswith(b'{"type":"message"'):
                yield json.loads(line)

    def close(self) -> None:
        self.sock.close()


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    v = sorted(values)
    if not v:
        return {"n": 0}

    def at(p: float) -> float:
        return round(v[min(len(v) - 1, int(p / 100 * len(v)))], 2)

    return {"n": len(v), "p50": at(50), "p99": at(99), "p99.9": at(99.9), "max": round(v[-1], 2)}


def latency(db: str, rate: float, seconds: float, mode: str) -> dict[str, object]:
    """mode: "cross-node" (sender on A, receiver on B), "same-node" (both on one clustered node), "single" (both
    on a server without --cluster): the last two are the baseline the first is compared with."""
    if mode == "single":
        a = b = Node(db)
    elif mode == "same-node":
        a = b = Node(db, "--cluster", "--node", "a")
    else:
        a, b = Node(db, "--cluster", "--node", "a"), Node(db, "--cluster", "--node", "b")
    try:
        sender, receiver = Client(a.port, "sender"), Client(b.port, "receiver")
        time.sleep(1.0)  # the join reaches the other node
        sent: dict[str, float] = {}
        got: list[float] = []
        total = int(rate * seconds)

        def receive() -> None:
            for m in receiver.messages():
                at = sent.get(m["text"])
                if at is not None:
                    got.append((time.perf_counter() - at) * 1000)
                if len(got) >= total:
                    return

        reader = threading.Thread(target=receive, daemon=True)
        reader.start()
        start = time.perf_counter()
        for i in range(total):
            due = start + i / rate
            while (now := time.perf_counter()) < due:
                time.sleep(min(0.001, due - now))
            key = f"m{i}"
            sent[key] = time.perf_counter()
            sender.send(key)
        reader.join(30)
        return {"mode": mode, "rate": rate, "sent": total, **percentiles(got)}
    finally:
        a.stop()
        b.stop()


def throughput(db: str, nodes: int, clients: int, messages: int, cluster: bool) -> dict[str, object]:
    servers = [Node(db, *(("--cluster", "--node", f"n{i}") if cluster else ())) for i in range(nodes)]
    try:
        cs = [Client(servers[i % nodes].port, f"c{i}") for i in range(clients)]
        time.sleep(1.0)
        expected = clients * messages
        done = threading.Barrier(clients + 1)

        def count(c: Client) -> None:
            for n, _m in enumerate(c.messages(), 1):
                if n >= expected:
                    break
            done.wait()

        readers = [threading.Thread(target=count, args=(c,), daemon=True) for c in cs]
        for r in readers:
            r.start()
        start = time.perf_counter()
        payload = [f"line {i} " + "x" * 40 for i in range(messages)]
        writers = [threading.Thread(target=lambda c=c: c.sock.sendall("".join(p + "\n" for p in payload).encode()))
                   for c in cs]
        for w in writers:
            w.start()
        done.wait(120)
        elapsed = time.perf_counter() - start
        return {"nodes": nodes, "cluster": cluster, "clients": clients, "deliveries": expected * clients,
                "seconds": round(elapsed, 2), "deliveries_per_s": round(expected * clients / elapsed)}
    finally:
        for s in servers:
            s.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    results: dict[str, object] = {}
    try:
        def fresh() -> str:
            name = f"h_cluster_bench_{uuid.uuid4().hex[:8]}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            fresh.names.append(name)  # type: ignore[attr-defined]
            return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)

        fresh.names = []  # type: ignore[attr-defined]
        results["machine"] = {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in os.getloadavg()],
                              "commit": _commit()}
        results["latency"], results["throughput"] = [], []
        for round_ in range(1, args.rounds + 1):
            for mode in ("single", "same-node", "cross-node"):
                results["latency"].append({"round": round_, **latency(fresh(), args.rate, args.seconds, mode)})
            results["throughput"].append({"round": round_, **throughput(fresh(), 1, args.clients, args.messages,
                                                                         cluster=False)})
            for n in (1, 2, 3):
                results["throughput"].append({"round": round_, **throughput(fresh(), n, args.clients, args.messages,
                                                                             cluster=True)})
        results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]  # type: ignore[index]
    finally:
        with admin.connect() as conn:
            for name in fresh.names:  # type: ignore[attr-defined]
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    print(summary(results), file=sys.stderr)
    print(json.dumps(results, indent=1))


def summary(results: dict[str, object]) -> str:
    """The figures as a table, for a reader (the JSON is for tools)."""
    machine = results["machine"]
    lines = [f"machine: {machine['cpus']} cores, load average {machine['loadavg_before']} before, "  # type: ignore[index]
             f"{machine.get('loadavg_after')} after; commit {machine['commit']}",  # type: ignore[attr-defined]
             "latency (ms)        round  arrived      p50     p99   p99.9     max"]
    for r in results["latency"]:  # type: ignore[attr-defined]
        lines.append(f"  {r['mode']:<18}{r['round']:>5}  {r.get('n', 0):>5}/{r['sent']:<5}"
                     f"{r.get('p50', '-'):>7}{r.get('p99', '-'):>8}{r.get('p99.9', '-'):>8}{r.get('max', '-'):>8}")
    lines.append("throughput          round  deliveries/s")
    for r in results["throughput"]:  # type: ignore[attr-defined]
        what = f"{r['nodes']} node{'s' if r['nodes'] > 1 else ''}" + (" --cluster" if r["cluster"] else "")
        lines.append(f"  {what:<18}{r['round']:>5}  {r['deliveries_per_s']:>12}")
    return "\n".join(lines)


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip() or None
    except OSError:
        return None


if __name__ == "__main__":
    main()
