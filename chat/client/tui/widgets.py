"""The full-screen client's widgets: a scrollback that can grow at the top, the lists, the input line."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Static

from chat.client.inputline import Completer, InputHistory


class Scrollback(ScrollView, can_focus=False):
    """A conversation's lines, wrapped to the width. Unlike a log, lines may be inserted anywhere (older history
    arrives at the top, messages missed while away in the middle) and what the reader looks at stays put.
    Scrolling up at the top asks for older messages (`ReachedTop`)."""

    class ReachedTop(Message):
        def __init__(self, scrollback: Scrollback) -> None:
            super().__init__()
            self.scrollback = scrollback

    def __init__(self, key: str, texts: list[Text], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.key = key
        self.texts: list[Text] = list(texts)
        self._wrapped: list[list[Strip]] = []  # per text, wrapped to self._width
        self._lines: list[Strip] = []
        self._width = 0
        self._follow = True  # the reader is at the bottom: keep showing the newest lines

    @property
    def plain_lines(self) -> list[str]:
        """What it shows, as plain text, one entry per item (for tests and copying)."""
        return [t.plain for t in self.texts]

    def insert(self, index: int, text: Text) -> None:
        self.texts.insert(index, text)
        if not self._width:
            return
        strips = self._wrap(text)
        self._wrapped.insert(index, strips)
        appended = index == len(self._wrapped) - 1
        line = len(self._lines) if appended else sum(len(w) for w in self._wrapped[:index])
        self._lines[line:line] = strips
        top = round(self.scroll_y)
        self.virtual_size = Size(self._width, len(self._lines))
        if self._follow:
            self.scroll_end(animate=False, immediate=False, x_axis=False)
        elif line <= top:  # above what the reader looks at: keep looking at the same lines
            self.scroll_to(y=top + len(strips), animate=False, immediate=True)
        self.refresh()

    def _wrap(self, text: Text) -> list[Strip]:
        console = self.app.console
        options = console.options.update_width(self._width)
        return [Strip(line) for line in console.render_lines(text, options, pad=False)]

    def _rewrap(self) -> None:
        self._wrapped = [self._wrap(t) for t in self.texts]
        self._lines = [strip for strips in self._wrapped for strip in strips]
        self.virtual_size = Size(self._width, len(self._lines))
        if self._follow:
            self.scroll_end(animate=False, immediate=False, x_axis=False)
        self.refresh()

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

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._follow = round(new) >= self.max_scroll_y
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
    """The input line: Up/Down recall, Tab completes; PageUp/PageDown scroll; Ctrl-D on an empty line quits."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "recall(-1)", "Previous line", show=False),
        Binding("down", "recall(1)", "Next line", show=False),
        Binding("tab", "complete", "Complete", show=False, priority=True),
        Binding("ctrl+d", "delete_or_quit", "Quit on an empty line", show=False),
    ]

    class Complete(Message):
        """Ask the app for candidates; it answers by calling `complete_with`."""

    class QuitRequest(Message):
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

    def on_key(self, event: events.Key) -> None:
        if event.key != "tab":
            self.completer.reset()
