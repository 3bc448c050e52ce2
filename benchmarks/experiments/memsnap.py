#!/usr/bin/env python3
"""EXPERIMENT: `chat serve` under tracemalloc; each SIGUSR1 writes what was allocated since the first SIGUSR1.

    MEM_OUT=/tmp/mem.txt .venv/bin/python benchmarks/experiments/memsnap.py serve --db /tmp/m.sqlite \
        --port 16691 --rate 0 &
    kill -USR1 $!      # baseline (after a few warm-up clients)
    ...connect 1000 idle clients (benchmarks/clients.py IdleClients)...
    kill -USR1 $!      # the top 25 source lines by memory still allocated since the baseline

Slow (every allocation is traced): for memory questions only, never for timing.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import tracemalloc

import chat.cli.main

tracemalloc.start(1)
_snapshots: list[tracemalloc.Snapshot] = []


def _dump(_signum: int, _frame: object) -> None:
    gc.collect()
    snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    _snapshots.append(snap)
    current, peak = tracemalloc.get_traced_memory()
    with open(os.environ.get("MEM_OUT", "memsnap.txt"), "a") as f:
        f.write(f"=== snapshot {len(_snapshots)}: traced {current / 1024:.0f} KiB, peak {peak / 1024:.0f} KiB\n")
        if len(_snapshots) > 1:
            for stat in snap.compare_to(_snapshots[0], "lineno")[:25]:
                f.write(f"{stat}\n")


signal.signal(signal.SIGUSR1, _dump)
sys.argv[0] = "chat"
chat.cli.main.main()
