#!/usr/bin/env python3
"""Search at the storage level, on a 1,000,000-message database: query latencies, the index's size, what the index
costs the store's writes, and how fast `chat index` fills it in. Not a test: it prints figures.

    python benchmarks/search_bench.py [--dir /tmp/chat-search] [--messages 1000000] [--store-messages 100000]
                                      [--postgres URL | --no-postgres] [--parts store,build,queries,server,throughput]
                                      [--pg-prefix NAME] [--keep] [--walk-windows 0,1000,4000]

PostgreSQL's figures alone, in one command (its databases are named <prefix>_store, _big, _throughput):

    python benchmarks/search_bench.py --no-sqlite --parts build,queries,server,throughput --pg-prefix h_search

Run with the project's Python (it imports `chat`). It takes a few minutes on 2 cores and is bounded by its sizes.
Parts, each printed as it ends and all together as one JSON object at the end:

* store: `ChatStore.write` batches (as the server's writer thread calls it, like store_micro.py) of 10, 100 and
  1000 messages on a fresh database, with the index written by the writer (what chat does), without any index
  (a database at migration 0001), and with the alternative the issue asked to weigh: an index kept by triggers
  (SQLite: an external-content FTS5 table, `unicode61 remove_diacritics 2`, as soju does; PostgreSQL: a generated
  `to_tsvector('simple', text)` column). Median of 3 runs, alternating.
* build: a 1,000,000-message database written at migration 0001 (no index), upgraded, then indexed by
  `backfill()` (what `chat index` runs): its rate, and the index's size on disk beside the messages'. PostgreSQL:
  then `VACUUM (ANALYZE) messages`, as autovacuum would after it.
* queries: `search_messages` as a user who may read every room, 50 results a page, after one warm-up pass
  (PostgreSQL: with `--walk-windows`, each query by each first walk in turn, 0 being the planner alone):
  one word (also matching longer words it begins, the default), the same word exact ("word"), two words,
  a two-word phrase taken from a stored message, a CJK run, a word narrowed by in:#room, and from:nick alone.
  p50 and p99 in milliseconds.
* server (needs build, or its database kept): `chat serve` on the big database, `--clients` loadgen clients
  (../shared/bench/loadgen.c, built into --dir) chatting paced as W4 (`--rate` messages/s in all, `--rooms`
  rooms, `--duration` s), while one JSON client sends `/search` every 50 ms, one-word and two-word-phrase queries
  in turn, each timed from sending it to its `search_end` line. Variants in turn each rep (`--reps`): searching,
  quiet (no searches), no index (experiments/no_index.py: what the chatters' latency owes to the index).
* throughput: messages stored per second through `chat serve` (loadgen burst, `--throughput-workload`; a
  message is delivered once committed), with the index and without (experiments/no_index.py), alternating,
  a fresh database each run. PostgreSQL, `--no-cleaner-variant`: a third variant, the index with no
  PendingListCleaner (experiments/writer_timing.py with CHAT_NO_CLEANER=1: the writer's INSERTs move the GIN
  pending list, as before chat.storage.pending_list).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOMS = 20
SENDERS = 200
VOCABULARY = 50_000
ACCENTED = ["café", "naïve", "déjà", "crème", "Straße", "Łódź", "façade", "señor"]
CJK = ["東京タワー", "会議は明日です", "서울에서 만나요", "北京欢迎你", "ありがとう"]
EMOJI = ["🎉", "👍", "🚀", "😂", "❤️"]


class Corpus:
    """Chat-like text: 3-15 words of a Zipf-distributed made-up vocabulary; some accents, CJK and emoji."""

    def __init__(self, seed: int = 7) -> None:
        rng = random.Random(seed)
        letters = "etaoinshrdlcumwfgypbvkjxqz"
        weights = [12, 9, 8, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
        words: set[str] = set()
        while len(words) < VOCABULARY:
            words.add("".join(rng.choices(letters, weights, k=rng.choice((2, 3, 4, 4, 5, 5, 6, 6, 7, 8, 9)))))
        self.words = sorted(words, key=lambda w: (len(w), w))  # short words are the common ones, as in language
        self.cum = list(itertools.accumulate(1 / (rank + 1) ** 1.07 for rank in range(VOCABULARY)))
        self.rng = rng

    def text(self) -> str:
        rng = self.rng
        words = rng.choices(self.words, cum_weights=self.cum, k=rng.randint(3, 15))
        roll = rng.random()
        if roll < 0.05:
            words.insert(rng.randrange(len(words)), rng.choice(ACCENTED))
        elif roll < 0.08:
            words.append(rng.choice(CJK))
        elif roll < 0.11:
            words.append(rng.choice(EMOJI))
        return " ".join(words)

    def batches(self, count: int, size: int, start: int = 1, t0: float = 1_790_000_000.0) -> Any:
        from chat.protocol.events import ChatMessage, MessageKind
        from chat.storage.repository import WriteBatch

        for first in range(start, start + count, size):
            batch = WriteBatch()
            for i in range(first, min(first + size, start + count)):
                room = i % ROOMS + 1
                batch.messages.append((ChatMessage(i, MessageKind.MESSAGE, f"user{i % SENDERS}", self.text(),
                                                   t0 + i * 0.01, room=f"room{room}"), room))
            yield batch


# ------------------------------------------------------------------------------------------------ databases


def fresh_sqlite(path: Path) -> str:
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return str(path)


def fresh_postgres(url: str, name: str) -> str:
    from sqlalchemy import create_engine, text

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return postgres_url(url, name)


def postgres_url(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_postgres(url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def migrate(engine: Any, revision: str) -> None:
    from alembic import command

    from chat.storage.database import alembic_config

    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def drop_index(engine: Any) -> None:
    """A database at head without the search index: what "no index" measures (the index tables and state go)."""
    from sqlalchemy import text

    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TABLE messages_fts"))
        else:
            conn.execute(text("ALTER TABLE messages DROP COLUMN search_vector"))  # its GIN index goes with it
        conn.execute(text("DELETE FROM search_index_state"))


def write_at_0001(engine: Any, corpus: Corpus, count: int) -> None:
    """Rooms and `count` messages in a database at migration 0001 (before the index), in plain SQL: the store's
    code writes the current schema, which 0001 does not have yet."""
    from sqlalchemy import text

    def stamp(t: float) -> Any:
        moment = dt.datetime.fromtimestamp(t, dt.UTC)
        return moment.replace(tzinfo=None).isoformat(" ") if engine.dialect.name == "sqlite" else moment

    with engine.begin() as conn:
        conn.execute(text("INSERT INTO rooms (id, name, name_key, created_at) VALUES (:id, :name, :name, :at)"),
                     [{"id": r, "name": f"room{r}", "at": stamp(0.0)} for r in range(1, ROOMS + 1)])
    insert = text("INSERT INTO messages (id, kind, room_id, sender, text, created_at) "
                  "VALUES (:id, 'message', :room, :sender, :text, :at)")
    for batch in corpus.batches(count, 5000):
        rows = [{"id": m.id, "room": room, "sender": m.nick, "text": m.text, "at": stamp(m.time)}
                for m, room in batch.messages]
        with engine.begin() as conn:
            conn.execute(insert, rows)


def add_trigger_index(engine: Any) -> None:
    """The alternative to the writer: the database keeps an index itself, on every insert."""
    from sqlalchemy import text

    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("CREATE VIRTUAL TABLE trigger_fts USING fts5(text, content='messages', "
                              "content_rowid='id', tokenize='unicode61 remove_diacritics 2')"))
            conn.execute(text("CREATE TRIGGER trigger_fts_insert AFTER INSERT ON messages BEGIN "
                              "INSERT INTO trigger_fts (rowid, text) VALUES (new.id, new.text); END"))
        else:
            conn.execute(text("ALTER TABLE messages ADD COLUMN trigger_vector tsvector "
                              "GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED"))
            conn.execute(text("CREATE INDEX ix_trigger_vector ON messages USING gin (trigger_vector)"))


# ------------------------------------------------------------------------------------------------ parts


def part_store(kind: str, make_db: Any, corpus: Corpus, count: int) -> dict[str, dict[str, int]]:
    from chat.storage.database import make_engine
    from chat.storage.repository import ChatStore, StoredRoom, WriteBatch

    variants = ("writer index", "no index", "trigger index")
    results: dict[str, dict[str, list[float]]] = {v: {} for v in variants}
    for batch in (10, 100, 1000):
        n = min(count, batch * 1500)
        # the same texts for every variant: generated once
        batches = list(corpus.batches(n, batch))
        for _rep in range(3):
            for variant in variants:
                engine = make_engine(make_db())
                migrate(engine, "head")
                if variant != "writer index":
                    drop_index(engine)
                if variant == "trigger index":
                    add_trigger_index(engine)
                store = ChatStore(engine, search_index=variant == "writer index")
                store.write(WriteBatch(rooms=[StoredRoom(r, f"room{r}", None, None, None, 0.0)
                                              for r in range(1, ROOMS + 1)]))
                t0 = time.perf_counter()
                for b in batches:
                    store.write(b)
                elapsed = time.perf_counter() - t0
                results[variant].setdefault(str(batch), []).append(n / elapsed)
                engine.dispose()
        line = ", ".join(f"{v} {statistics.median(results[v][str(batch)]):,.0f}" for v in variants)
        print(f"[{kind}] store, batches of {batch}: messages/s: {line}", file=sys.stderr, flush=True)
    return {v: {b: round(statistics.median(r)) for b, r in per.items()} for v, per in results.items()}


def part_build(kind: str, db: str, corpus: Corpus, count: int) -> dict[str, Any]:
    from sqlalchemy import text

    from chat.storage.database import make_engine, upgrade
    from chat.storage.search_index import backfill

    engine = make_engine(db)
    migrate(engine, "0001")
    t0 = time.perf_counter()
    write_at_0001(engine, corpus, count)
    written = time.perf_counter() - t0
    t0 = time.perf_counter()
    upgrade(engine)
    migrated = time.perf_counter() - t0
    t0 = time.perf_counter()
    indexed = backfill(engine, batch=5000, report_every=30)
    elapsed = time.perf_counter() - t0
    vacuumed = 0.0
    if engine.dialect.name == "postgresql":
        # what autovacuum does after a bulk load and the backfill's updates, so the plans and pages are the usual ones
        t0 = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE) messages"))
        vacuumed = time.perf_counter() - t0
    sizes = disk_sizes(engine)
    engine.dispose()
    out = {"messages": indexed, "write_s": round(written, 1), "upgrade_s": round(migrated, 3),
           "backfill_s": round(elapsed, 1), "backfill_per_s": round(indexed / elapsed), "vacuum_s": round(vacuumed, 1),
           **sizes}
    print(f"[{kind}] build: {json.dumps(out)}", file=sys.stderr, flush=True)
    return out


def disk_sizes(engine: Any) -> dict[str, float]:
    from sqlalchemy import text

    mib = 1 << 20
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            rows = conn.execute(text("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")).all()
            index = sum(size for name, size in rows if name.startswith("messages_fts"))
            messages = sum(size for name, size in rows if name in ("messages", "ix_messages_room_id_id"))
            total = sum(size for _name, size in rows)
        else:  # the index: the vectors in messages (their bytes) and their GIN index
            index = conn.execute(text(
                "SELECT pg_relation_size('ix_messages_search_vector') + "
                "(SELECT coalesce(sum(pg_column_size(search_vector)), 0) FROM messages)")).scalar()
            messages = conn.execute(text("SELECT pg_total_relation_size('messages')")).scalar() - index
            total = conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
    return {"index_mib": round(index / mib, 1), "messages_mib": round(messages / mib, 1),
            "database_mib": round(total / mib, 1)}


def part_queries(kind: str, db: str, corpus: Corpus, count: int, per_class: int,
                 walk_windows: list[int] | None = None) -> dict[str, dict[str, float]]:
    from sqlalchemy import select

    from chat.search.query import parse_search
    from chat.storage.database import make_engine
    from chat.storage.repository import MESSAGES
    from chat.storage.search import SearchScope, search_messages

    rng = random.Random(11)
    engine = make_engine(db)
    scope = SearchScope(room_ids=frozenset(range(1, ROOMS + 1)))
    mid = [corpus.words[rng.randrange(50, 20_000)] for _ in range(per_class)]
    with engine.connect() as conn:
        sample = [conn.execute(select(MESSAGES.c.text).where(MESSAGES.c.id == rng.randrange(1, count))).scalar()
                  for _ in range(per_class)]
    phrases = []
    for text in sample:
        words = [w for w in text.split() if w.isascii()]
        at = rng.randrange(max(len(words) - 1, 1))
        phrases.append('"' + " ".join(words[at:at + 2]) + '"')
    classes = {
        "one word (also as a prefix; ranks 50-20,000)": mid,
        'the same word, exact ("word")': [f'"{w}"' for w in mid],
        "a common word (ranks 0-49)": [corpus.words[rng.randrange(50)] for _ in range(per_class)],
        "two words": [f"{a} {b}" for a, b in zip(mid, reversed(mid), strict=True)],
        "a phrase from a stored message": phrases,
        "a CJK run (会議)": ["会議"] * per_class,
        "a word in:#room": [f"{w} in:#room{rng.randrange(1, ROOMS + 1)}" for w in mid],
        "from:nick alone": [f"from:user{rng.randrange(SENDERS)}" for _ in range(per_class)],
    }
    import chat.storage.search as storage_search

    shipped = storage_search.WALK_WINDOW
    windows = walk_windows if kind == "postgresql" and walk_windows else [shipped]
    out: dict[str, dict[str, float]] = {}
    for name, queries in classes.items():
        parsed = [parse_search(q) for q in queries]
        for q in parsed[: min(20, len(parsed))]:  # warm-up
            search_messages(engine, q, scope, limit=50, budget=10)
        times: dict[int, list[float]] = {w: [] for w in windows}
        results: list[int] = []
        for i, q in enumerate(parsed):
            for w in windows if i % 2 == 0 else windows[::-1]:  # each query by every variant, in turn
                storage_search.WALK_WINDOW = w
                t0 = time.perf_counter()
                page = search_messages(engine, q, scope, limit=50, budget=10)
                times[w].append((time.perf_counter() - t0) * 1000)
            results.append(len(page.messages))
        storage_search.WALK_WINDOW = shipped
        for w, ts in times.items():
            ts.sort()
            label = name if len(windows) == 1 else f"{name} [{'planner alone' if w == 0 else f'walk {w}'}]"
            out[label] = {"p50_ms": round(ts[len(ts) // 2], 2), "p99_ms": round(ts[int(len(ts) * 0.99)], 2),
                          "max_ms": round(ts[-1], 2), "mean_results": round(statistics.mean(results), 1)}
            print(f"[{kind}] {label}: {json.dumps(out[label])}", file=sys.stderr, flush=True)
    engine.dispose()
    print(f"[{kind}] queries: load average {os.getloadavg()}", file=sys.stderr, flush=True)
    return out


# ------------------------------------------------------------------------------------- through the server

_ROOT = Path(__file__).resolve().parent.parent
# ../shared beside the checkout (or beside the folder of worktrees that holds it)
LOADGEN_SOURCE = next((p for p in (_ROOT.parent / "shared" / "bench" / "loadgen.c",
                                   _ROOT.parent.parent / "shared" / "bench" / "loadgen.c") if p.exists()),
                      _ROOT.parent / "shared" / "bench" / "loadgen.c")
NO_INDEX_SERVE = Path(__file__).resolve().parent / "experiments" / "no_index.py"
NO_CLEANER_SERVE = Path(__file__).resolve().parent / "experiments" / "writer_timing.py"  # with CHAT_NO_CLEANER=1
JOINED_MARKER = (Path(__file__).resolve().parent / "JOINED_MARKER").read_text().strip()


def loadgen_binary(work: Path) -> str:
    """$LOADGEN, or the shared loadgen built into `work` (never beside its source)."""
    if os.environ.get("LOADGEN"):
        return os.environ["LOADGEN"]
    binary = work / "loadgen"
    if not binary.exists() or binary.stat().st_mtime < LOADGEN_SOURCE.stat().st_mtime:
        import subprocess

        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(binary), str(LOADGEN_SOURCE)], check=True, timeout=120)
    return str(binary)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """`chat serve` (or the no-index experiment) on `db`, a random port, flood control off; stopped by its pid."""

    def __init__(self, db: str, work: Path, index: bool = True, cleaner: bool = True) -> None:
        import subprocess

        self.port = free_port()
        env = dict(os.environ)
        if not cleaner:
            cmd = [sys.executable, str(NO_CLEANER_SERVE)]
            env |= {"CHAT_NO_CLEANER": "1", "CHAT_WRITER_TIMING": str(work / f"timing-{self.port}.json")}
        else:
            cmd = [sys.executable, "-m", "chat"] if index else [sys.executable, str(NO_INDEX_SERVE)]
        cmd += ["serve", "--db", db, "--host", "127.0.0.1", "--port", str(self.port), "--rate", "0",
                "--log-level", "warning"]
        self.out = work / f"serve-{self.port}.log"
        self.proc = subprocess.Popen(cmd, stdout=self.out.open("wb"), stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 120
        while "listening on" not in self.out.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"chat serve did not start: see {self.out}")
            time.sleep(0.05)

    def stop(self) -> None:
        import subprocess

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_loadgen(binary: str, serve: Serve, args: str, label: str) -> Any:
    import subprocess

    cmd = [binary, "--proto", "line", "--port", str(serve.port), *args.split(), "--joined-marker", JOINED_MARKER,
           "--server-pid", str(serve.proc.pid), "--label", label]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def loadgen_result(proc: Any, timeout: float) -> dict[str, str]:
    out, err = proc.communicate(timeout=timeout)
    kv = dict(tok.split("=", 1) for tok in out.split() if "=" in tok)
    if kv.get("status") != "ok":
        print(f"loadgen: {out.strip()} {err.strip()[-500:]}", file=sys.stderr, flush=True)
    return kv


class Searcher:
    """One JSON-mode client: sends `/search QUERY` and times it to the last line of the answer (`search_end`)."""

    def __init__(self, port: int, nick: str = "searcher") -> None:
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.sock.sendall(f"/nick {nick}\n/format json\n".encode())
        self._until(b'"type":"format"')

    def _until(self, marker: bytes) -> list[bytes]:
        lines: list[bytes] = []
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                lines.append(line)
                if marker in line or b'"type":"error"' in line:
                    return lines
            data = self.sock.recv(1 << 20)
            if not data:
                raise RuntimeError("the server closed the searcher's connection")
            self.buf += data

    def search(self, query: str) -> tuple[float, int, str | None]:
        """(milliseconds from sending to the search_end line, results, error code or None)."""
        t0 = time.perf_counter()
        self.sock.sendall(f"/search {query}\n".encode())
        lines = self._until(b'"type":"search_end"')
        ms = (time.perf_counter() - t0) * 1000
        last = json.loads(lines[-1])
        if last["type"] == "error":
            return ms, 0, str(last["code"])
        return ms, int(last["count"]), None

    def close(self) -> None:
        self.sock.close()


def server_queries(corpus: Corpus, db: str, count: int, per_class: int) -> dict[str, list[str]]:
    """One-word queries (ranks 50-20,000, as in part_queries) and two-word phrases taken from stored messages."""
    from sqlalchemy import select

    from chat.storage.database import make_engine
    from chat.storage.repository import MESSAGES

    rng = random.Random(13)
    engine = make_engine(db)
    with engine.connect() as conn:
        sample = [conn.execute(select(MESSAGES.c.text).where(MESSAGES.c.id == rng.randrange(1, count))).first()
                  for _ in range(per_class * 2)]
    engine.dispose()
    phrases = []
    for row in sample:
        words = [w for w in (row[0] if row else "").split() if w.isascii()]
        if len(words) >= 2:
            at = rng.randrange(len(words) - 1)
            phrases.append('"' + " ".join(words[at:at + 2]) + '"')
    return {"one word": [corpus.words[rng.randrange(50, 20_000)] for _ in range(per_class)],
            "phrase": phrases[:per_class]}


def percentiles(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    if not times:
        return {}
    return {"p50_ms": round(times[len(times) // 2], 2), "p99_ms": round(times[int(len(times) * 0.99)], 2),
            "max_ms": round(times[-1], 2), "n": len(times)}


VARIANTS = ("searching", "quiet", "no index")


def part_server(kind: str, db: str, work: Path, corpus: Corpus, count: int, per_class: int, clients: int, rooms: int,
                rate: int, duration: int, reps: int) -> dict[str, Any]:
    """`/search` through the running server on the big database while `clients` loadgen clients chat (paced, as
    W4), timed from sending to the last result line; and the chatters' latency with and without the searches,
    alternating. The searcher sends one query every 50 ms, one-word and phrase queries in turn. Variants, in turn
    in each rep: "searching", "quiet" (no searches), and "no index" (no searches, and a server that writes no
    search terms: experiments/no_index.py; what the chatters' latency owes to the index. The messages it stores
    are never searchable: the big database is a benchmark's)."""
    binary = loadgen_binary(work)
    queries = server_queries(corpus, db, count, per_class)
    args = (f"--clients {clients} --rooms {rooms} --mode paced --rate {rate} --duration {duration} "
            f"--idle-timeout 30 --timeout {duration + 120} --conn-concurrency 100")
    out: dict[str, Any] = {"loadgen": args, "runs": []}
    times: dict[str, list[float]] = {name: [] for name in queries}
    results: dict[str, list[int]] = {name: [] for name in queries}
    errors: list[str] = []
    for rep in range(reps):
        for variant in VARIANTS:
            searching = variant == "searching"
            serve = Serve(db, work, index=variant != "no index")
            try:
                searcher = Searcher(serve.port)
                for qs in queries.values():  # warm-up: the index's pages into the cache
                    for q in qs[:10]:
                        searcher.search(q)
                # rooms of their own: a room of an earlier run would send its backlog of BENCH lines on joining,
                # which loadgen would count as deliveries, minutes late
                room_args = f"{args} --room-prefix bench{int(time.time())}v{VARIANTS.index(variant)}r"  # JOINED_MARKER
                proc = start_loadgen(binary, serve, room_args, f"search/{rep}/{variant}")
                i = 0
                while proc.poll() is None:
                    if searching:
                        name = "one word" if i % 2 == 0 else "phrase"
                        qs = queries[name]
                        ms, n, error = searcher.search(qs[(i // 2) % len(qs)])
                        if error:
                            errors.append(error)
                        else:
                            times[name].append(ms)
                            results[name].append(n)
                        i += 1
                    time.sleep(0.05)
                kv = loadgen_result(proc, duration + 150)
                searcher.close()
            finally:
                serve.stop()
            run = {"variant": variant, "searches": i, "status": kv.get("status"),
                   "lat_p50_ms": kv.get("lat_p50_ms"), "lat_p99_ms": kv.get("lat_p99_ms"),
                   "lat_max_ms": kv.get("lat_max_ms"), "msgs_sent": kv.get("msgs_sent"),
                   "srv_cpu_pct": kv.get("srv_cpu_pct")}
            out["runs"].append(run)
            print(f"[{kind}] server, rep {rep}: {json.dumps(run)}", file=sys.stderr, flush=True)
    for name in queries:
        out[name] = {**percentiles(times[name]),
                     "mean_results": round(statistics.mean(results[name]), 1) if results[name] else 0}
        print(f"[{kind}] server /search {name}: {json.dumps(out[name])}", file=sys.stderr, flush=True)
    out["search_errors"] = {code: errors.count(code) for code in set(errors)}
    for variant in VARIANTS:
        p99s = [float(r["lat_p99_ms"]) for r in out["runs"] if r["variant"] == variant and r["lat_p99_ms"]]
        out[f"chat_p99_ms ({variant})"] = p99s
        print(f"[{kind}] server, chatters' p99 ms ({variant}): {p99s}", file=sys.stderr, flush=True)
    return out


def part_throughput(kind: str, make_db: Any, work: Path, reps: int, workload: str,
                    no_cleaner: bool = False) -> dict[str, Any]:
    """Messages stored per second through the server (loadgen burst: a message counts once delivered, and it is
    delivered once committed), with the index and without it (experiments/no_index.py), and with `no_cleaner` the
    index without PendingListCleaner, alternating, each run on a fresh database."""
    binary = loadgen_binary(work)
    variants = ("index", "no index", "index, no cleaner") if no_cleaner else ("index", "no index")
    rates: dict[str, list[float]] = {v: [] for v in variants}
    for rep in range(reps):
        for variant in (variants if rep % 2 == 0 else variants[::-1]):
            serve = Serve(make_db(), work, index=variant != "no index", cleaner=variant != "index, no cleaner")
            try:
                kv = loadgen_result(start_loadgen(binary, serve, workload, f"throughput/{rep}/{variant}"), 300)
            finally:
                serve.stop()
            if kv.get("status") == "ok":
                rates[variant].append(float(kv["msgs_per_s"]))
            print(f"[{kind}] throughput rep {rep} {variant}: {kv.get('msgs_per_s')} msgs/s "
                  f"(status {kv.get('status')}, server CPU {kv.get('srv_cpu_pct')} %)", file=sys.stderr, flush=True)
    out: dict[str, Any] = {"workload": workload, "runs": rates}
    if rates["index"] and rates["no index"]:
        on, off = statistics.median(rates["index"]), statistics.median(rates["no index"])
        out |= {"index_median": round(on), "no_index_median": round(off), "ratio": round(on / off, 3)}
        print(f"[{kind}] throughput: index {on:,.0f} / no index {off:,.0f} msgs/s = {on / off:.0%}",
              file=sys.stderr, flush=True)
        pairs = [f"{a / b:.0%}" for a, b in zip(rates["index"], rates["no index"], strict=False)]
        out["pair_ratios"] = pairs
        print(f"[{kind}] throughput: index / no index, each rep: {', '.join(pairs)} (load {os.getloadavg()})",
              file=sys.stderr, flush=True)
    if no_cleaner and rates["index, no cleaner"] and rates["no index"]:
        pairs = [f"{a / b:.0%}" for a, b in zip(rates["index, no cleaner"], rates["no index"], strict=False)]
        out["no_cleaner_pair_ratios"] = pairs
        print(f"[{kind}] throughput: index with no cleaner / no index, each rep: {', '.join(pairs)}",
              file=sys.stderr, flush=True)
    return out


def postgres_reachable(url: str) -> bool:
    try:
        from sqlalchemy import create_engine, text

        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:  # any failure: no PostgreSQL part
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/chat-search-bench"))
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--store-messages", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200, help="queries per class")
    ap.add_argument("--postgres", default=os.environ.get("CHAT_TEST_POSTGRES_URL",
                                                         "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--parts", default="store,build,queries")
    ap.add_argument("--keep", action="store_true", help="keep the big PostgreSQL database (for --parts queries)")
    ap.add_argument("--walk-windows", default="", help="queries part, PostgreSQL: compare these first walks, "
                    "interleaved (chat.storage.search.WALK_WINDOW; 0 = the planner alone), e.g. 0,1000,4000")
    ap.add_argument("--pg-prefix", default="h_search", help="PostgreSQL: the benchmark's databases' name prefix")
    ap.add_argument("--clients", type=int, default=200, help="server part: loadgen clients chatting")
    ap.add_argument("--rooms", type=int, default=20, help="server part: the rooms they chat in")
    ap.add_argument("--rate", type=int, default=500, help="server part: messages/s in all (W4's)")
    ap.add_argument("--duration", type=int, default=20, help="server part: seconds per loadgen run")
    ap.add_argument("--reps", type=int, default=2, help="server and throughput parts: alternating runs")
    ap.add_argument("--no-cleaner-variant", action="store_true", help="throughput part, PostgreSQL: also the "
                    "index without PendingListCleaner (the writer's INSERTs move the GIN pending list)")
    ap.add_argument("--throughput-workload", default="--clients 200 --rooms 100 --msgs 1500 --window 32 "
                    "--idle-timeout 30 --timeout 240 --conn-concurrency 100")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    results: dict[str, Any] = {"messages": args.messages}

    kinds = [] if args.no_sqlite else ["sqlite"]
    if not args.no_postgres and postgres_reachable(args.postgres):
        kinds.append("postgresql")
    for kind in kinds:
        corpus = Corpus()
        res: dict[str, Any] = {}
        if kind == "sqlite":
            def scratch() -> str:
                return fresh_sqlite(args.dir / "store.sqlite")
            big = str(args.dir / "big.sqlite")
        else:
            def scratch() -> str:
                return fresh_postgres(args.postgres, args.pg_prefix + "_store")
            big = "postgresql"
        if "store" in parts:
            res["store"] = part_store(kind, scratch, corpus, args.store_messages)
        if kind == "postgresql":
            drop_postgres(args.postgres, args.pg_prefix + "_store")
        if "build" in parts:
            db = fresh_sqlite(Path(big)) if kind == "sqlite" else fresh_postgres(args.postgres, args.pg_prefix + "_big")
            res["build"] = part_build(kind, db, corpus, args.messages)
        else:
            db = big if kind == "sqlite" else postgres_url(args.postgres, args.pg_prefix + "_big")
        if "queries" in parts:
            res["queries"] = part_queries(kind, db, corpus, args.messages, args.queries,
                                          [int(w) for w in args.walk_windows.split(",")] if args.walk_windows else None)
        if "server" in parts:
            res["server"] = part_server(kind, db, args.dir, corpus, args.messages, args.queries, args.clients,
                                        args.rooms, args.rate, args.duration, args.reps)
        if "throughput" in parts:
            if kind == "sqlite":
                def server_db() -> str:
                    return fresh_sqlite(args.dir / "throughput.sqlite")
            else:
                def server_db() -> str:
                    return fresh_postgres(args.postgres, args.pg_prefix + "_throughput")
            res["throughput"] = part_throughput(kind, server_db, args.dir, max(args.reps, 2),
                                                args.throughput_workload,
                                                args.no_cleaner_variant and kind == "postgresql")
            if kind == "postgresql":
                drop_postgres(args.postgres, args.pg_prefix + "_throughput")
        if kind == "postgresql" and not args.keep:
            drop_postgres(args.postgres, args.pg_prefix + "_big")
        results[kind] = res
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
