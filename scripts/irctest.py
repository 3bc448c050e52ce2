"""Run irctest (../shared/irctest, a pinned copy) against this server and print pass/fail counts.

    python scripts/irctest.py                 # the baseline selection, then the IRCv3 modules we claim
    python scripts/irctest.py -n 2            # in parallel (pytest-xdist), on a machine with cores to spare
    python scripts/irctest.py -- -k JOIN      # anything after -- goes to pytest

The baseline is irctest's `-m 'not services and not implementation-specific and not deprecated and not strict and
not IRCv3'`; the IRCv3 part runs the modules of the capabilities the IRC door offers, services included (our
controller registers accounts with `chat users add`). Results: docs/IRC.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ../shared/irctest beside the repository (or beside the folder of a git worktree); CHAT_IRCTEST says otherwise
IRCTEST = Path(os.environ.get("CHAT_IRCTEST") or next(
    (p / "shared" / "irctest" for p in ROOT.parents if (p / "shared" / "irctest").is_dir()), ROOT.parent / "shared"
    / "irctest"))
CONTROLLER_DIR = ROOT / "tests" / "irctest"
BASELINE = "not services and not implementation-specific and not deprecated and not strict and not IRCv3"
IRCV3_MODULES = ["cap", "echo_message", "message_tags", "labeled_responses", "chathistory", "sasl", "away_notify",
                 "utf8", "multi_prefix"]
IRCV3_MARKS = "not implementation-specific and not deprecated and not strict"


def run(selection: list[str], marks: str, workers: str | None, extra: list[str]) -> dict[str, int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CONTROLLER_DIR), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--controller", "chat_irctest", "-m", marks,
            "-q", "-rfE", *(["-n", workers] if workers else []), *selection, *extra]
    done = subprocess.run(args, cwd=IRCTEST, env=env, capture_output=True, text=True)
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    for line in failed:
        print("  " + line[:200])
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    print("  " + summary)
    return {word: int(count) for count, word in re.findall(r"(\d+) (passed|failed|skipped|error|xfailed)", summary)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", dest="workers", help="pytest-xdist workers")
    parser.add_argument("--only", choices=("baseline", "ircv3"), help="run one part only")
    parser.add_argument("extra", nargs="*", help="more pytest arguments (after --)")
    options = parser.parse_args()
    if not IRCTEST.is_dir():
        sys.exit(f"irctest is not at {IRCTEST}")
    if options.only != "ircv3":
        print(f"baseline ({BASELINE}):")
        run(["irctest/server_tests/"], BASELINE, options.workers, options.extra)
    if options.only != "baseline":
        print(f"IRCv3 modules ({', '.join(IRCV3_MODULES)}):")
        run([f"irctest/server_tests/{m}.py" for m in IRCV3_MODULES], IRCV3_MARKS, options.workers, options.extra)


if __name__ == "__main__":
    main()
