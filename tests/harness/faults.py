"""Real faults: a database locked by another process, immutable files, a full disk."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@contextmanager
def sqlite_write_lock(path: str) -> Iterator[None]:
    """Another process holds `BEGIN EXCLUSIVE` on the SQLite file until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n", "no lock taken"
        yield
    finally:
        if holder.stdin is not None:
            holder.stdin.close()  # its readline() returns: it rolls back and exits
        holder.wait(10)


def immutable_supported(directory: Path) -> str | None:
    """Why `chattr +i` cannot make files in `directory` unwritable here, or None when it can."""
    if os.geteuid() != 0:
        return "chattr +i needs root"
    if not shutil.which("chattr"):
        return "chattr is not installed"
    probe = directory / ".immutable-probe"
    try:
        with open(probe, "wb", buffering=0) as f:  # opened before: the server's files are open too
            if subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode != 0:
                return f"the filesystem of {directory} does not support chattr +i"
            try:
                f.write(b"y")
            except OSError:
                return None
        return f"an immutable file on the filesystem of {directory} still takes writes through an open descriptor"
    finally:
        subprocess.run(["chattr", "-i", str(probe)], capture_output=True)
        probe.unlink()


@contextmanager
def immutable(*paths: str) -> Iterator[None]:
    """Make files unwritable for real, even through descriptors already open and even for root."""
    subprocess.run(["chattr", "+i", *paths], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *paths], check=True)


@contextmanager
def small_tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted on `directory` (made if needed), unmounted at the end. Skips the test, saying
    why, where it cannot be mounted (not root, or a container without CAP_SYS_ADMIN)."""
    import pytest

    directory.mkdir(exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield directory
    finally:
        if subprocess.run(["umount", str(directory)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(directory)], capture_output=True)


def fill_disk(directory: Path) -> Path:
    """Fill the filesystem holding `directory` until a write fails for want of space; returns the filler."""
    filler = directory / "filler"
    block = b"\0" * 65536
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
        try:  # the last partial block
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return filler
