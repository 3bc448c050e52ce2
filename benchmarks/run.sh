#!/usr/bin/env bash
# One command for the whole benchmark: our server (`chat serve`, every message stored) against ngIRCd on the
# same loopback workloads with the same load generator, plus the storage and memory benchmarks, then a table
# with the ratio ours / ngircd for each workload.
#
#   benchmarks/run.sh                                  # everything, 3 reps (about 6 minutes)
#   REPS=1 WORKLOADS="W2 W3" PARTS=loadgen benchmarks/run.sh
#   benchmarks/run.sh --help                           # every flag (each has an env var twin)
#
# Loopback only: every server listens on 127.0.0.1 and loadgen refuses any other destination. Every step has a
# time limit, and the whole run stops after MAX_MINUTES (default 40). Servers it starts are stopped on exit,
# on Ctrl-C, and (PR_SET_PDEATHSIG) even if this runner is killed.
#
# Needs root only to install missing packages (apt-get install ngircd gcc) and for py-spy to attach to the
# server; with ngircd, gcc and a ptrace-permitted py-spy present, it runs as any user.
#
# Builds go to $BENCH_WORK (default /tmp/chat-perf: loadgen, databases, logs); results to benchmarks/results/
# (gitignored) and the summary of the run to benchmarks/LAST_RUN.md.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED=${SHARED_BENCH:-$(cd "$ROOT/../shared/bench" 2>/dev/null && pwd || echo /work/shared/bench)}
export BENCH_WORK=${BENCH_WORK:-/tmp/chat-perf}
mkdir -p "$BENCH_WORK"

for arg in "$@"; do
    if [ "$arg" = "-h" ] || [ "$arg" = "--help" ]; then
        exec python3 "$HERE/run.py" --help
    fi
done

# ---- prerequisites ------------------------------------------------------------------------------------------
install_pkgs() {
    if [ "$(id -u)" != 0 ]; then
        echo "run.sh: missing $*; install it (apt-get install -y $*) or run as root" >&2
        exit 1
    fi
    echo "run.sh: installing $* with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null 2>&1 ||
        { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null; }
}
need=()
command -v gcc >/dev/null || need+=(gcc)
if [[ " ${SERVERS:-chat ngircd} " == *" ngircd "* ]]; then
    command -v ngircd >/dev/null || [ -x /usr/sbin/ngircd ] || need+=(ngircd)
fi
[ ${#need[@]} -eq 0 ] || install_pkgs "${need[@]}"
# The Debian package starts a system ngircd on port 6667 where systemd runs; ours uses its own config and port.

# ---- loadgen, built outside the repository ----------------------------------------------------------------
[ -f "$SHARED/loadgen.c" ] || { echo "run.sh: no loadgen.c in $SHARED (set SHARED_BENCH)" >&2; exit 1; }
mkdir -p "$BENCH_WORK/build"
if [ ! -x "$BENCH_WORK/build/loadgen" ] || [ "$SHARED/loadgen.c" -nt "$BENCH_WORK/build/loadgen" ]; then
    gcc -O2 -Wall -o "$BENCH_WORK/build/loadgen" "$SHARED/loadgen.c"
fi
export LOADGEN=$BENCH_WORK/build/loadgen

# ---- our server: the project's venv, else `chat` on PATH ------------------------------------------------------
if [ -z "${CHAT_BIN:-}" ]; then
    if [ -x "$ROOT/.venv/bin/chat" ]; then CHAT_BIN=$ROOT/.venv/bin/chat; else CHAT_BIN=$(command -v chat || true); fi
fi
[ -n "$CHAT_BIN" ] || { echo "run.sh: no chat command (pip install -e . in a venv first)" >&2; exit 1; }
export CHAT_BIN
# the Python that runs `chat` (for the storage micro-benchmark, which imports the project)
CHAT_PYTHON=$(head -1 "$CHAT_BIN" | sed -n 's/^#!//p')
[ -x "${CHAT_PYTHON%% *}" ] || CHAT_PYTHON=python3
export CHAT_PYTHON
if [ -z "${PYSPY:-}" ]; then
    if [ -x "$(dirname "$CHAT_BIN")/py-spy" ]; then PYSPY=$(dirname "$CHAT_BIN")/py-spy; else PYSPY=$(command -v py-spy || true); fi
fi
export PYSPY
export NGIRCD_CONF_SRC=$SHARED/configs/ngircd.conf

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# the runner itself is standard-library Python; it starts and stops every server
exec python3 "$HERE/run.py" "$@"
