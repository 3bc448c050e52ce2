"""What the server logs, captured in-process or read from a process's stderr; figures tests measure."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from harness.clients import WAIT, wait_for


def soak() -> bool:
    """CHAT_SOAK=1 runs the reliability tests at soak scale (minutes); the default is the CI scale."""
    return os.environ.get("CHAT_SOAK", "") not in ("", "0")


def scale(ci: Any, soak_value: Any) -> Any:
    return soak_value if soak() else ci


def record_figures(test: str, **figures: Any) -> None:
    """Print the figures a test measured (shown with -s), and append them as one JSON line to the file named by
    CHAT_FIGURES, so docs/RELIABILITY.md can be refreshed from the last run."""
    line = json.dumps({"test": test, **figures}, sort_keys=True)
    print(f"FIGURES {line}")
    path = os.environ.get("CHAT_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


class LogCapture(logging.Handler):
    """Every record the server logs while installed (the in-process server logs to `chat.*`)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.records.append(record)

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        with self._lock:
            return [r.getMessage() for r in self.records if r.levelno >= level]

    def expect(self, *parts: str, timeout: float = WAIT) -> str:
        """Wait for a message containing every one of `parts` (the server logs from its own thread)."""

        def find() -> str | None:
            return next((m for m in self.messages() if all(p in m for p in parts)), None)

        wait_for(lambda: find() is not None, timeout, f"a log line with {parts}")
        return find()  # type: ignore[return-value]

    def problems(self) -> list[str]:
        """Errors and unhandled exceptions: a clean run has none."""
        with self._lock:
            return [self.format(r) for r in self.records if r.levelno >= logging.ERROR or r.exc_info]


@contextmanager
def capture_logs(level: int = logging.INFO) -> Iterator[LogCapture]:
    logger = logging.getLogger("chat")
    handler = LogCapture()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def log_problems(log: str) -> list[str]:
    """Lines of a `chat serve` log (text or JSON format) that report an error or an unhandled exception."""
    found = []
    for line in log.splitlines():
        if line.startswith("{"):
            obj = json.loads(line)
            if obj.get("level") in ("error", "critical") or "exception" in obj:
                found.append(line)
        elif " ERROR " in line or " CRITICAL " in line or "Traceback" in line:
            found.append(line)
    return found
