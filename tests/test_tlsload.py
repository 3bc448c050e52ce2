"""benchmarks/tlsload.c, the TLS-speaking load generator of benchmarks/tls.py: compiled and run briefly against a
real server (plain door and TLS door), so its accounting is known to be right before its figures are believed.
Skipped, saying why, without gcc or OpenSSL's headers. No figure is asserted: speed is the benchmark's business."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import ServerThread, TLSFiles, make_tls_files

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "benchmarks" / "tlsload.c"
MARKER = (REPO / "benchmarks" / "JOINED_MARKER").read_text().strip()
RUN_LIMIT = 60  # seconds: the tool's own --timeout is lower, this only bounds a hung process


@pytest.fixture(scope="module")
def tlsload(tmp_path_factory: pytest.TempPathFactory) -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    if not Path("/usr/include/openssl/ssl.h").exists():
        pytest.skip("OpenSSL's headers are not installed (apt-get install libssl-dev)")
    binary = tmp_path_factory.mktemp("tlsload") / "tlsload"
    build = subprocess.run([gcc, "-O2", "-Wall", "-o", str(binary), str(SOURCE), "-lssl", "-lcrypto",
                            "-lm"], capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    return str(binary)


def run_tool(binary: str, *args: str) -> tuple[int, dict[str, str]]:
    done = subprocess.run([binary, "--joined-marker", MARKER, "--timeout", "30", "--idle-timeout", "20", *args],
                          capture_output=True, text=True, timeout=RUN_LIMIT)
    line = done.stdout.strip()
    return done.returncode, dict(kv.split("=", 1) for kv in line.split()) if line else {}


@pytest.fixture
def bench_server(make_server: Callable[..., ServerThread], tls_files: TLSFiles) -> ServerThread:
    return make_server(tls_cert=tls_files.cert, tls_key=tls_files.key, tls_port=0, rate=0)


def assert_every_delivery_once(summary: dict[str, str]) -> None:
    assert summary["status"] == "ok", summary
    assert summary["deliveries"] == summary["expected_deliveries"] != "0"
    assert (summary["lost"], summary["dups"], summary["misrouted"], summary["garbage"]) == ("0", "0", "0", "0")
    assert summary["reordered"] == "0"  # one sender's messages reach each member in order


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_burst_counts_every_delivery_exactly_once(tlsload: str, bench_server: ServerThread, tls_files: TLSFiles,
                                                  tls: bool) -> None:
    port = bench_server.tls_port if tls else bench_server.port
    tls_args = ["--tls", "1", "--ca", tls_files.ca_file] if tls else ["--tls", "0"]
    code, summary = run_tool(tlsload, "--port", str(port), *tls_args, "--clients", "8", "--msgs", "25",
                             "--window", "4")
    assert code == 0, summary
    assert_every_delivery_once(summary)
    assert summary["expected_deliveries"] == str(8 * 25 * 7)
    assert summary["tls"] == ("1" if tls else "0")
    assert summary["tls_version"].startswith("TLSv1.") if tls else summary["tls_version"] == "-"
    assert summary["verify"] == ("1" if tls else "0")


def test_paced_over_tls_sends_on_schedule_and_measures_latency(tlsload: str, bench_server: ServerThread) -> None:
    code, summary = run_tool(tlsload, "--port", str(bench_server.tls_port), "--tls", "1", "--clients", "5",
                             "--mode", "paced", "--rate", "50", "--duration", "1")
    assert code == 0, summary
    assert_every_delivery_once(summary)
    assert summary["msgs_sent"] == "50" and summary["expected_deliveries"] == str(50 * 4)
    assert summary["verify"] == "0"  # no --ca: the benchmark may skip the check of the chain
    assert 0 < float(summary["lat_p50_ms"]) <= float(summary["lat_p99_ms"]) <= float(summary["lat_max_ms"])


def test_a_certificate_from_another_ca_fails_the_setup(tlsload: str, bench_server: ServerThread,
                                                       tmp_path: Any) -> None:
    stranger = make_tls_files(tmp_path / "stranger")
    code, summary = run_tool(tlsload, "--port", str(bench_server.tls_port), "--tls", "1", "--ca", stranger.ca_file,
                             "--clients", "2", "--msgs", "1")
    assert (code, summary["status"], summary["joined"]) == (3, "setup_failed", "0")


def test_destinations_outside_loopback_are_refused(tlsload: str) -> None:
    done = subprocess.run([tlsload, "--host", "192.0.2.1", "--port", "7000"], capture_output=True, text=True,
                          timeout=RUN_LIMIT)
    assert done.returncode == 4 and "refusing non-loopback" in done.stderr
    assert done.stdout == ""
