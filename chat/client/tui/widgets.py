"""The full-screen client's widgets: a scrollback that can grow at the top, the lists, the input line."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Static

from chat.client.inputline import Completer, InputHistory
from chat.client.tui.render import Rendered

MIN_BODY = 16  # columns a wrapped body needs beside its prefix; narrower, lines wrap from the left edge
MARKER_TEXT = " new since you looked "
HIGHLIGHT = Style(reverse=True)


class Scrollback(ScrollView, can_focus=False):
    """A conversation's lines, wrapped to the width. Unlike a log, lines may be inserted anywhere (older history
    arrives at the top, messages missed while away in the middle) and what the reader looks at stays put.
    Scrolling up at the top asks for older messages (`ReachedTop`). A read marker line can be drawn after an
    entry, and one entry highlighted (a search match)."""

    class ReachedTop(Message):
        def __init__(self, scrollback: Scrollback) -> None:
            super().__init__()
            self.scrollback = scrollback

    class Followed(Message):
        """The reader left the bottom, or came back to it."""

    def __init__(self, key: str, items: list[Rendered], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.key = key
        self.items: list[Rendered] = list(items)
        self.marker_after: int | None = None  # draw the read marker after this item
        self.highlighted: int | None = None
        self.new_below = 0  # items added below while the reader was not at the bottom
        self._wrapped: list[list[Strip]] = []  # per item, wrapped to self._width
        self._lines: list[Strip] = []
        self._width = 0
        self._follow = True  # the reader is at the bottom: keep showing the newest lines

    @property
    def following(self) -> bool:
        return self._follow

    @property
    def plain_lines(self) -> list[str]:
        """What it shows, as plain text, one entry per item (for tests and copying)."""
        return [item.plain for item in self.items if not item.hidden]

    @property
    def screen_lines(self) -> list[str]:
        """Every wrapped line, as plain text (the read marker included)."""
        return [strip.text for strip in self._lines]

    # ----------------------------------------------------------------------------------------- changes

    def insert(self, index: int, item: Rendered) -> None:
        self.items.insert(index, item)
        if self.marker_after is not None and index <= self.marker_after:
            self.marker_after += 1
        if self.highlighted is not None and index <= self.highlighted:
            self.highlighted += 1
        if not self._width:
            return
        strips = self._wrap(item, index)
        self._wrapped.insert(index, strips)
        appended = index == len(self._wrapped) - 1
        line = len(self._lines) if appended else self._line_of(index)
        self._lines[line:line] = strips
        top = round(self.scroll_y)
        self.virtual_size = Size(self._width, len(self._lines))
        if self._follow:
            self.scroll_end(animate=False, immediate=False, x_axis=False)
        elif line <= top:  # above what the reader looks at: keep looking at the same lines
            self.scroll_to(y=top + len(strips), animate=False, immediate=True)
        if appended and not self._follow and strips:
            self.new_below += 1
        self.refresh()

    def replace_all(self, items: list[Rendered]) -> None:
        """Draw every item again (some were hidden or shown)."""
        self.items = list(items)
        if self.marker_after is not None and self.marker_after >= len(items):
            self.marker_after = None
        self.highlighted = None
        if self._width:
            self._rewrap()

    def set_marker(self, after: int | None) -> None:
        if after != self.marker_after:
            self.marker_after = after
            if self._width:
                self._relayout()

    def highlight(self, index: int | None) -> None:
        """Highlight one item (None: none) and bring it into view."""
        previous, self.highlighted = self.highlighted, index
        if not self._width:
            return
        for changed in {previous, index} - {None}:
            assert changed is not None
            if changed < len(self.items):
                self._wrapped[changed] = self._wrap(self.items[changed], changed)
        self._relayout()
        if index is not None:
            height = self.scrollable_content_region.height
            self.scroll_to(y=max(0, self._line_of(index) - height // 2), animate=False, immediate=True)

    def jump_down(self) -> None:
        self.scroll_end(animate=False, immediate=True, x_axis=False)
        self._set_follow(True)

    # ----------------------------------------------------------------------------------------- layout

    def _line_of(self, index: int) -> int:
        line = sum(len(w) for w in self._wrapped[:index])
        if self.marker_after is not None and self.marker_after < index:
            line += 1
        return line

    def _wrap(self, item: Rendered, index: int) -> list[Strip]:
        if item.hidden:
            return []
        console = self.app.console
        width = self._width
        body = item.body
        if index == self.highlighted:
            body = body.copy()
            body.stylize(HIGHLIGHT)
        indent = item.prefix.cell_len
        if indent and width - indent < MIN_BODY:  # too narrow for a hanging indent: wrap it all as one text
            whole = Text.assemble(item.prefix, body, no_wrap=False, overflow="fold")
            return [Strip(line) for line in console.render_lines(whole, console.options.update_width(width),
                                                                 pad=False)]
        lines = console.render_lines(body, console.options.update_width(width - indent), pad=False)
        if not indent:
            return [Strip(line) for line in lines]
        head = console.render_lines(item.prefix, console.options.update_width(width), pad=False)[0]
        pad = [Segment(" " * indent)]
        return [Strip(head + lines[0]), *(Strip(pad + line) for line in lines[1:])]

    def _marker_strip(self) -> Strip:
        width = max(self._width, len(MARKER_TEXT))
        text = MARKER_TEXT.center(width, "─")
        return Strip([Segment(text, Style(color="red", bold=True))])

    def _relayout(self) -> None:
        lines: list[Strip] = []
        for index, strips in enumerate(self._wrapped):
            lines.extend(strips)
            if index == self.marker_after:
                lines.append(self._marker_strip())
        top = round(self.scroll_y)
        self._lines = lines
        self.virtual_size = Size(self._width, len(self._lines))
        if self._follow:
            self.scroll_end(animate=False, immediate=False, x_axis=False)
        else:
            self.scroll_to(y=min(top, max(0, len(lines) - 1)), animate=False, immediate=True)
        self.refresh()

    def _rewrap(self) -> None:
        self._wrapped = [self._wrap(item, i) for i, item in enumerate(self.items)]
        self._relayout()

    def on_resize(self, event: events.Resize) -> None:
        width = self.scrollable_content_region.width
        if width > 0 and width != self._width:
            self._width = width
            self._rewrap()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        index = scroll_y + y
        if index >= len(self._lines):
            return Strip.blank(width, self.rich_style)
        return self._lines[index].crop_extend(scroll_x, scroll_x + width, self.rich_style).apply_style(
            self.rich_style)

    # ------------------------------------------------------------------------------------------ scrolling

    def _set_follow(self, follow: bool) -> None:
        if follow:
            self.new_below = 0
        if follow != self._follow:
            self._follow = follow
            self.post_message(self.Followed())

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._set_follow(round(new) >= self.max_scroll_y)
        if round(new) <= 0 < round(old):
            self.post_message(self.ReachedTop(self))

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        if round(self.scroll_y) <= 0:
            self.post_message(self.ReachedTop(self))

    def page_up(self) -> None:
        if round(self.scroll_y) <= 0:
            self.post_message(self.ReachedTop(self))
        else:
            self.scroll_page_up(animate=False)

    def page_down(self) -> None:
        self.scroll_page_down(animate=False)


class Clickable(Static):
    """A list drawn as lines of text; clicking line N calls `on_pick(N)`."""

    def __init__(self, on_pick: Callable[[int], None] | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.on_pick = on_pick

    def on_click(self, event: events.Click) -> None:
        if self.on_pick is not None and event.y >= 0:
            self.on_pick(event.y)


class ChatInput(Input):
    """The input line: Up/Down recall, Tab completes, End at the end of the line jumps the scrollback down,
    Ctrl-D on an empty line quits. A paste of several lines is held and asked about (`Pasted`); Ctrl-R
    searches back (`Search`). A key pressed with Alt never types: Alt-N is a command, not text."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "recall(-1)", "Previous line", show=False),
        Binding("down", "recall(1)", "Next line", show=False),
        Binding("tab", "complete", "Complete", show=False, priority=True),
        Binding("ctrl+d", "delete_or_quit", "Quit on an empty line", show=False),
        Binding("end", "end_or_jump", "End of line, or newest messages", show=False),
        Binding("escape", "escape", "Cancel", show=False),
        Binding("ctrl+r", "search", "Search back", show=False),
    ]

    class Complete(Message):
        """Ask the app for candidates; it answers by calling `complete_with`."""

    class QuitRequest(Message):
        pass

    class JumpDown(Message):
        pass

    class Pasted(Message):
        """Several lines were pasted: the app asks before sending them."""

        def __init__(self, lines: list[str]) -> None:
            super().__init__()
            self.lines = lines

    class Escape(Message):
        pass

    class Search(Message):
        pass

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.history = InputHistory()
        self.completer = Completer()

    def action_recall(self, step: int) -> None:
        line = self.history.previous(self.value) if step < 0 else self.history.next()
        if line is not None:
            self.value = line
            self.cursor_position = len(line)

    def action_complete(self) -> None:
        self.post_message(self.Complete())

    def complete_with(self, commands: list[str], nicks: list[str], rooms: list[str]) -> None:
        done = self.completer.complete(self.value, self.cursor_position, commands, nicks, rooms)
        if done is not None:
            self.value = done.value
            self.cursor_position = done.cursor

    def action_delete_or_quit(self) -> None:
        if self.value:
            self.action_delete_right()
        else:
            self.post_message(self.QuitRequest())

    def action_end_or_jump(self) -> None:
        if self.cursor_position >= len(self.value):
            self.post_message(self.JumpDown())
        else:
            self.action_end()

    def action_escape(self) -> None:
        self.post_message(self.Escape())

    def action_search(self) -> None:
        self.post_message(self.Search())

    # Textual calls these handlers of every class in the MRO in turn (Input's after these) unless one
    # prevents the default: so they never call super(), they let Input's run or stop it.

    async def _on_key(self, event: events.Key) -> None:
        if event.key != "tab":
            self.completer.reset()
        if event.key.startswith("alt+") and event.is_printable:
            event.prevent_default()  # Alt-1 is a binding, never a "1" (nor a "¡") in the message

    def _on_paste(self, event: events.Paste) -> None:
        lines = event.text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        while len(lines) > 1 and not lines[-1].strip():
            lines.pop()  # the newline a copied line usually ends with
        if len(lines) <= 1:
            return  # one line: Input pastes it
        event.stop()
        event.prevent_default()
        head, tail = self.value[: self.cursor_position], self.value[self.cursor_position:]
        lines[0], lines[-1] = head + lines[0], lines[-1] + tail
        self.post_message(self.Pasted(lines))
