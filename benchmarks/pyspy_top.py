#!/usr/bin/env python3
"""Summarise a py-spy `--format raw` profile (collapsed stacks, one `frame;frame;... COUNT` per line).

    pyspy_top.py PROFILE.raw [--top 15] [--title "W2"]

Prints markdown: samples per thread, the functions with the most *self* samples (the leaf frame: where the CPU
was), and the most *inclusive* samples (on the stack at all), as a share of all samples. Profiles recorded with
`--threads` start each stack with `thread (TID): NAME`; the thread name is kept, the id dropped.
Standard library only.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_GC_FRAMES = ("gc_collect_main", "gc_collect_with_callback", "gc_collect_generations")
_THREAD = re.compile(r"^thread \(\w+\)(?:: (?P<name>.*))?$")
_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse(path: Path) -> list[tuple[str, list[str], int]]:
    """(thread name, frames outermost first, samples) per distinct stack."""
    stacks = []
    for raw in path.read_text(errors="replace").splitlines():
        raw = raw.rstrip()
        if not raw or " " not in raw:
            continue
        stack, _, count = raw.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        thread = "-"
        m = _THREAD.match(frames[0]) if frames else None
        if m:
            thread = m.group("name") or "thread"
            frames = frames[1:]
        stacks.append((thread, [_short(f) for f in frames], int(count)))
    return stacks


def _short(frame: str) -> str:
    """`fn (path/to/file.py:123)` -> `fn (file.py)`: a function aggregated over its lines (py-spy --function
    already gives its first line; without it, one function would be split over many lines)."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    file = m.group("file")
    for marker in ("site-packages/", "python3.11/", "python3.12/", "python3.13/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{m.group('fn')} ({file})"


def summarise(path: Path, top: int = 15, title: str | None = None) -> str:
    stacks = parse(path)
    total = sum(c for _, _, c in stacks)
    out = []
    if title:
        out.append(f"#### {title}\n")
    if not total:
        return "\n".join([*out, "no samples\n"])
    threads: Counter[str] = Counter()
    self_: Counter[tuple[str, str]] = Counter()
    incl: Counter[tuple[str, str]] = Counter()
    for thread, frames, count in stacks:
        threads[thread] += count
        if frames:
            self_[(thread, frames[-1])] += count
        for f in set(frames):
            incl[(thread, f)] += count
    out.append(f"{total} samples (CPU-busy stacks only). By thread: "
               + ", ".join(f"{t} {100 * c / total:.0f}%" for t, c in threads.most_common()) + "\n")
    gc_samples = sum(c for _, frames, c in stacks if any(f.startswith(_GC_FRAMES) for f in frames))
    if gc_samples:
        out.append(f"Python's cyclic garbage collector (`{'`, `'.join(_GC_FRAMES)}` frames): "
                   f"{100 * gc_samples / total:.1f}% of samples.\n")
    sqlite_samples = sum(c for _, frames, c in stacks if any("libsqlite3" in f for f in frames))
    if sqlite_samples:
        out.append(f"Inside the SQLite library (`libsqlite3` frames): "
                   f"{100 * sqlite_samples / total:.1f}% of samples.\n")
    out.append("| self % | thread | function (where the CPU was) |")
    out.append("|--:|---|---|")
    for (thread, f), c in sorted(self_.items(), key=lambda kv: (-kv[1], kv[0]))[:top]:
        out.append(f"| {100 * c / total:.1f} | {thread} | `{f}` |")
    out.append("")
    out.append("| inclusive % | thread | function (on the stack) |")
    out.append("|--:|---|---|")
    shown = 0
    for (thread, f), c in sorted(incl.items(), key=lambda kv: (-kv[1], kv[0])):
        if c >= threads[thread] * 0.99 or f.startswith("0x"):
            continue  # a root every sample of its thread shares (bootstrap, CLI, run loop), or an unnamed C frame
        out.append(f"| {100 * c / total:.1f} | {thread} | `{f}` |")
        shown += 1
        if shown >= top:
            break
    out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile", type=Path)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--title")
    args = ap.parse_args()
    sys.stdout.write(summarise(args.profile, args.top, args.title))


if __name__ == "__main__":
    main()
