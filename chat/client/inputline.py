"""The input line's memory and Tab completion, free of any UI (the TUI's input widget uses them)."""

from __future__ import annotations

from dataclasses import dataclass

from chat.protocol import commands as server

# commands whose first argument is a room (so a bare word there completes to a room name), under every alias
ROOM_COMMANDS = frozenset(
    f"/{verb}" for verb, model in server.VERBS.items() if model in (server.Join, server.Leave, server.Who,
                                                                  server.History)
)


class InputHistory:
    """What the user typed, recalled with Up and Down like a shell; the line being typed is kept as a draft."""

    def __init__(self, limit: int = 500) -> None:
        self.limit = limit
        self.lines: list[str] = []
        self._position: int | None = None  # index into lines while recalling, None while typing
        self._draft = ""

    def add(self, line: str) -> None:
        if line.strip() and (not self.lines or self.lines[-1] != line):
            self.lines.append(line)
            del self.lines[: -self.limit]
        self._position = None

    def previous(self, current: str) -> str | None:
        """The line before the one shown (None: nothing older)."""
        if self._position is None:
            if not self.lines:
                return None
            self._draft = current
            self._position = len(self.lines)
        if self._position == 0:
            return None
        self._position -= 1
        return self.lines[self._position]

    def next(self) -> str | None:
        """The line after the one shown; the draft after the last one (None: not recalling)."""
        if self._position is None:
            return None
        self._position += 1
        if self._position >= len(self.lines):
            self._position = None
            return self._draft
        return self.lines[self._position]


@dataclass(frozen=True, slots=True)
class Completed:
    value: str
    cursor: int


@dataclass(slots=True)
class _Cycle:
    start: int  # where the completed word starts
    tail: str  # what followed the cursor
    matches: list[str]
    suffix: str
    index: int
    result: Completed


class Completer:
    """Tab completion of commands, nicks and #rooms; Tab again cycles through the other matches (irssi-like)."""

    def __init__(self) -> None:
        self._cycle: _Cycle | None = None

    def reset(self) -> None:
        self._cycle = None

    def complete(self, value: str, cursor: int, commands: list[str], nicks: list[str],
                 rooms: list[str]) -> Completed | None:
        cycle = self._cycle
        if cycle is not None and cycle.result == Completed(value, cursor) and len(cycle.matches) > 1:
            cycle.index = (cycle.index + 1) % len(cycle.matches)
            cycle.result = self._apply(value[: cycle.start], cycle.matches[cycle.index], cycle.suffix, cycle.tail)
            return cycle.result
        start = value.rfind(" ", 0, cursor) + 1
        word = value[start:cursor]
        matches, suffix = self._candidates(value[:start], word, commands, nicks, rooms)
        if not matches:
            self._cycle = None
            return None
        result = self._apply(value[:start], matches[0], suffix, value[cursor:])
        self._cycle = _Cycle(start, value[cursor:], matches, suffix, 0, result)
        return result

    @staticmethod
    def _apply(head: str, match: str, suffix: str, tail: str) -> Completed:
        if tail.startswith(" ") and suffix.endswith(" "):
            suffix = suffix.rstrip(" ")
        return Completed(head + match + suffix + tail, len(head) + len(match) + len(suffix))

    @staticmethod
    def _candidates(head: str, word: str, commands: list[str], nicks: list[str],
                    rooms: list[str]) -> tuple[list[str], str]:
        first = head.split(" ", 1)[0].lower()
        if not head and word.startswith("/"):
            pool, suffix = [f"/{c}" for c in sorted(commands)], " "
        elif word.startswith("#"):
            pool, suffix = [f"#{r}" for r in rooms], " "
        elif first in ROOM_COMMANDS and head.count(" ") == 1:
            pool, suffix = list(rooms), " "
        else:
            pool, suffix = list(nicks), (": " if not head else " ")
        lowered = word.lower()
        matches = list(dict.fromkeys(c for c in pool if c.lower().startswith(lowered)))
        return matches, suffix
