"""Split a byte stream into lines, with a hard cap on what a peer can make us buffer.

`LineFramer.feed(data)` returns the complete lines in `data` (without their `\\n` or `\\r\\n`) and the errors
met on the way, in order. A line longer than the cap is reported once as `line_too_long`, and its bytes are
dropped as they arrive until its newline: it is never buffered whole. Invalid UTF-8 is reported as
`invalid_utf8` for that line only. Feeding a stream in any pieces gives the same result as feeding it whole.
"""

from __future__ import annotations

from chat.protocol.errors import ChatError, ErrorCode

Frame = str | ChatError


class LineFramer:
    __slots__ = ("_buf", "_discarding", "max_line")

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buf = b""
        self._discarding = False

    @property
    def buffered(self) -> int:
        """Bytes held for an unfinished line (never more than `max_line`)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        if self._buf:
            data = self._buf + data
            self._buf = b""
        parts = data.split(b"\n")
        tail = parts.pop()  # bytes after the last newline: an unfinished line
        max_line = self.max_line
        for raw in parts:
            if self._discarding:  # the end of an over-long line: already reported
                self._discarding = False
                continue
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if len(raw) > max_line:
                out.append(_too_long(max_line))
                continue
            try:
                out.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                out.append(ChatError(ErrorCode.INVALID_UTF8, "That line was not valid UTF-8; it was ignored."))
        if self._discarding:
            return out
        # +1: a line of exactly max_line bytes may still be waiting for the \r of its \r\n
        if len(tail) > max_line + 1:
            out.append(_too_long(max_line))
            self._discarding = True
        else:
            self._buf = tail
        return out


def _too_long(max_line: int) -> ChatError:
    return ChatError(ErrorCode.LINE_TOO_LONG, f"That line was longer than {max_line} bytes; it was ignored.")
