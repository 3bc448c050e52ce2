"""The full-screen client: conversations on the left, the scrollback, members on the right, status and input.

The app only shows the model and forwards what the user does: the protocol is in core.py, the I/O and
reconnecting in session.py. After anything happens the view is brought up to date in `sync_view`, which
replays the model's scrollback inserts into each conversation's `Scrollback` and rings for new alerts.

Below `FOLD_MEMBERS` columns the members pane folds away, below `FOLD_LIST` the conversation list too (the
status line then lists the conversations with something unread), so the messages keep the width.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import time
from collections import deque
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import ContentSwitcher, Input, Static

from chat.client.commands import carries_password
from chat.client.config import ClientConfig, save_ignore
from chat.client.core import Alert, ClientCore, Outcome, Phase
from chat.client.model import MESSAGE_KINDS, ClientModel, Conversation, Kind
from chat.client.notify import attention, desktop_kind
from chat.client.session import ClientSession, ReconnectPolicy
from chat.client.tui.palette import nick_colour
from chat.client.tui.render import render_activity, render_conversation_label, render_entry
from chat.client.tui.widgets import ChatInput, Clickable, Scrollback

FOLD_MEMBERS = 90  # columns below which the members pane folds away
FOLD_LIST = 70  # columns below which the conversation list folds away too
PASTE_PREVIEW = 40  # characters of a pasted line shown in the question


def _restore_alt_digits() -> None:
    """Make Alt-1…9 mean Alt again. Textual reads ESC+digit (what xterm, tmux, GNOME Terminal and most others
    send for Alt-digit) as the characters a Mac keyboard's Option-digit types (¡™£¢∞§¶•ª), for WezTerm on
    macOS; the key then typed text into the message instead of switching conversations. Without those
    entries, ESC+digit is the key alt+N. (A terminal that itself sends ¡ for Option-1 sends text: set it to use
    Option as Meta.)"""
    try:
        from textual._ansi_sequences import ANSI_SEQUENCES_KEYS
    except ImportError:  # a Textual without the table: nothing to undo
        return
    for digit in "0123456789":
        value = ANSI_SEQUENCES_KEYS.get(f"\x1b{digit}")
        if isinstance(value, str) and not value.isascii():
            del ANSI_SEQUENCES_KEYS[f"\x1b{digit}"]  # type: ignore[attr-defined]


@dataclass(slots=True)
class _Search:
    """Ctrl-R: the input line holds what to look for; matches are entries of the conversation shown."""

    draft: str
    index: int | None = None  # the entry matched last


class ChatApp(App[int]):
    CSS_PATH = "chat.tcss"
    TITLE = "chat"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (FOLD_LIST, "-medium"), (FOLD_MEMBERS, "-wide")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+c", "quit_chat", "Quit", priority=True, show=False),
        Binding("ctrl+q", "quit_chat", "Quit", priority=True, show=False),
        Binding("ctrl+n,alt+right", "cycle(1)", "Next conversation", priority=True, show=False),
        Binding("ctrl+p,alt+left", "cycle(-1)", "Previous conversation", priority=True, show=False),
        Binding("pageup", "page(-1)", "Scroll up", priority=True, show=False),
        Binding("pagedown", "page(1)", "Scroll down", priority=True, show=False),
        Binding("ctrl+end", "jump_down", "Newest messages", priority=True, show=False),
        *(Binding(f"alt+{n}", f"show({n - 1})", priority=True, show=False) for n in range(1, 10)),
    ]

    def __init__(self, host: str, port: int, nick: str | None = None, room: str | None = None,
                 policy: ReconnectPolicy | None = None, config: ClientConfig | None = None,
                 password: str | None = None, tls: ssl.SSLContext | None = None) -> None:
        super().__init__()
        _restore_alt_digits()
        self.config = config or ClientConfig()
        self.host, self.port = host, port
        self.core = ClientCore(nick, room, f"{host}:{port}", ignored=self.config.ignore,
                               on_ignore=self._save_ignored, password=password)
        self.session = ClientSession(self.core, host, port, policy, on_change=self.sync_view, tls=tls)
        self.scrollbacks: dict[Conversation, Scrollback] = {}
        self.rung: deque[str] = deque(maxlen=100)  # the last things written to get the user's attention
        self.focused_terminal: bool | None = None  # None: the terminal never said (no focus reporting)
        self._desktop = desktop_kind(self.config.desktop, os.environ)
        self._counter = 0
        self._quitting = False
        self._paste: tuple[list[str], str] | None = None  # lines waiting for a yes, and the draft to restore
        self._search: _Search | None = None

    @property
    def model(self) -> ClientModel:
        return self.core.model

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            with VerticalScroll(id="conversations-pane", can_focus=False):
                yield Clickable(on_pick=self._pick_conversation, id="conversations")
            with Vertical(id="middle"):
                yield Static(id="topic")
                yield ContentSwitcher(id="scrollbacks")
                yield Static(id="more-below")
            with VerticalScroll(id="members-pane", can_focus=False):
                yield Static(id="members")
        yield Static(id="status")
        yield ChatInput(id="input", placeholder="Connecting…")

    def on_mount(self) -> None:
        self.query_one(ChatInput).focus()
        self.run_worker(self._run_session(), name="session", exit_on_error=False)
        self.set_interval(0.5, self._refresh_status)
        self.sync_view()

    async def _run_session(self) -> None:
        await self.session.run()
        if not self._quitting:
            self.exit(0)

    def _save_ignored(self, nicks: list[str]) -> str | None:
        return save_ignore(self.config, nicks, self.host, self.port, self.core.wanted_nick)

    # ------------------------------------------------------------------------------------ user actions

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        field = self.query_one(ChatInput)
        if self._search is not None:
            self._end_search(jump_down=False)
            return
        if self._paste is not None:
            lines, _ = self._paste
            self._paste = None
            field.value = ""
            self.session.submit_lines(lines)
            return
        line = event.value
        if self.core.password_for is None and not carries_password(line):  # never keep a password
            field.history.add(line)
        outcome = self.session.submit(line)
        if outcome is not Outcome.KEPT:
            field.value = ""
        if outcome is Outcome.QUIT:
            await self.action_quit_chat()

    def on_chat_input_pasted(self, message: ChatInput.Pasted) -> None:
        field = self.query_one(ChatInput)
        lines = [line for line in message.lines if line.strip()]
        if not lines:
            return
        self._paste = (message.lines, field.value)
        field.value = ""
        first = lines[0] if len(lines[0]) <= PASTE_PREVIEW else lines[0][:PASTE_PREVIEW] + "…"
        where = self.model.current.title
        self.core.info_here(f"Paste {len(lines)} lines into {where} ({first!r}…)? Enter sends them as "
                            f"{len(lines)} messages; Esc puts nothing.")
        self.sync_view()

    def on_chat_input_escape(self, _: ChatInput.Escape) -> None:
        field = self.query_one(ChatInput)
        if self._search is not None:
            self._end_search(jump_down=True)
        elif self._paste is not None:
            draft = self._paste[1]
            self._paste = None
            field.value = draft
            self.core.info_here("Nothing was pasted.")
            self.sync_view()

    def on_chat_input_complete(self, _: ChatInput.Complete) -> None:
        self.query_one(ChatInput).complete_with(self.core.typed.verbs, self.model.known_nicks(),
                                                self.model.room_names())

    async def on_chat_input_quit_request(self, _: ChatInput.QuitRequest) -> None:
        await self.action_quit_chat()

    def on_chat_input_jump_down(self, _: ChatInput.JumpDown) -> None:
        self.action_jump_down()

    def on_scrollback_reached_top(self, message: Scrollback.ReachedTop) -> None:
        if message.scrollback.key == self.model.current_key:
            self.session.fetch_older(message.scrollback.key)

    def on_scrollback_followed(self, _: Scrollback.Followed) -> None:
        self._refresh_status()

    def on_app_focus(self, _: events.AppFocus) -> None:
        self.focused_terminal = True

    def on_app_blur(self, _: events.AppBlur) -> None:
        self.focused_terminal = False
        self.model.looked_away()  # what comes while the terminal is elsewhere is new since you looked
        self.sync_view()

    async def action_quit_chat(self) -> None:
        if self._quitting:
            return
        self._quitting = True
        self.query_one(ChatInput).placeholder = "Leaving…"
        await self.session.quit()
        self.exit(0)

    def action_cycle(self, step: int) -> None:
        self._end_search(jump_down=False)
        self.model.cycle(step)
        self.sync_view()

    def action_show(self, index: int) -> None:
        self._pick_conversation(index)

    def action_page(self, step: int) -> None:
        scrollback = self._current_scrollback()
        if scrollback is None:
            return
        if step < 0:
            scrollback.page_up()
        else:
            scrollback.page_down()

    def action_jump_down(self) -> None:
        scrollback = self._current_scrollback()
        if scrollback is not None:
            scrollback.jump_down()
        self._refresh_status()

    def _pick_conversation(self, index: int) -> None:
        keys = list(self.model.conversations)
        if 0 <= index < len(keys):
            self._end_search(jump_down=False)
            self.model.select(keys[index])
            self.sync_view()

    # ------------------------------------------------------------------------------------------ search

    def on_chat_input_search(self, _: ChatInput.Search) -> None:
        field = self.query_one(ChatInput)
        if self._search is None:
            self._search = _Search(field.value)
            field.value = ""
            self._refresh_status()
        else:
            self._find(older=True)

    def on_input_changed(self, _: Input.Changed) -> None:
        if self._search is not None:
            self._search.index = None
            self._find(older=True)

    def _find(self, older: bool) -> None:
        """Highlight the newest entry (or the one before the last match) that contains what is typed."""
        search, scrollback = self._search, self._current_scrollback()
        if search is None or scrollback is None:
            return
        needle = self.query_one(ChatInput).value.casefold()
        entries = self.model.current.entries
        start = len(entries) if search.index is None else search.index
        found = None
        if needle:
            for index in range(start - 1, -1, -1):
                entry = entries[index]
                if (entry.kind in MESSAGE_KINDS and not entry.hidden
                        and needle in f"{entry.nick} {entry.text}".casefold()):
                    found = index
                    break
        if found is not None or search.index is None:
            search.index = found
            scrollback.highlight(found)
        self._refresh_status()

    def _end_search(self, jump_down: bool) -> None:
        if self._search is None:
            return
        field = self.query_one(ChatInput)
        draft, self._search = self._search.draft, None
        field.value = draft
        scrollback = self._current_scrollback()
        if scrollback is not None:
            scrollback.highlight(None)
            if jump_down:
                scrollback.jump_down()
        self._refresh_status()

    # -------------------------------------------------------------------------------------------- view

    def sync_view(self) -> None:
        """Bring every widget up to date with the model."""
        with contextlib.suppress(NoMatches):  # the app is closing, its widgets going (the session may report)
            self._sync_view()

    def _sync_view(self) -> None:
        if not self._mounted():
            return
        switcher = self.query_one(ContentSwitcher)
        inserts = self.model.take_inserts()
        redraw, self.model.redraw = self.model.redraw, set()
        fresh: set[Conversation] = set()
        for conversation in list(self.scrollbacks):
            if self.model.conversations.get(conversation.key) is not conversation:
                self.scrollbacks.pop(conversation).remove()
        for conversation in self.model.conversations.values():
            if conversation not in self.scrollbacks:
                self._counter += 1
                items = [render_entry(e) for e in conversation.entries]
                scrollback = Scrollback(conversation.key, items, id=f"conversation-{self._counter}")
                self.scrollbacks[conversation] = scrollback
                switcher.mount(scrollback)
                fresh.add(conversation)
            self.scrollbacks[conversation].key = conversation.key
        for insert in inserts:
            target = self.model.get(insert.key)
            if target is not None and target not in fresh and target in self.scrollbacks:
                self.scrollbacks[target].insert(insert.index, render_entry(insert.entry))
        for conversation, scrollback in self.scrollbacks.items():
            if conversation.key in redraw and conversation not in fresh:
                scrollback.replace_all([render_entry(e) for e in conversation.entries])
            scrollback.set_marker(conversation.marker_index())
        current = self._current_scrollback()
        if current is not None and switcher.current != current.id:
            switcher.current = current.id
        self._refresh_lists()
        self._refresh_status()
        self._ring(self.core.take_alerts())

    def _ring(self, alerts: list[Alert]) -> None:
        """A mention or a private message: the bell (and a desktop notification) unless the user is looking."""
        for alert in alerts:
            looking = alert.key == self.model.current_key and self.focused_terminal is True
            if looking:
                continue
            title = f"{alert.nick} (private)" if alert.private else f"{alert.nick} in {self._title_of(alert.key)}"
            data = attention(f"chat: {title}", alert.text, bell=self.config.bell, desktop=self._desktop,
                             in_tmux="TMUX" in os.environ)
            if data:
                self.rung.append(data)
                self._write_to_terminal(data)

    def _title_of(self, key: str) -> str:
        conversation = self.model.get(key)
        return conversation.title if conversation is not None else key

    def _write_to_terminal(self, data: str) -> None:
        driver = self._driver  # Textual has no public call for raw output; App.bell() writes BEL the same way
        if driver is not None and not self.is_headless:
            driver.write(data)

    def _mounted(self) -> bool:
        return bool(self.query(ContentSwitcher))

    def _current_scrollback(self) -> Scrollback | None:
        return self.scrollbacks.get(self.model.current)

    def _refresh_lists(self) -> None:
        current = self.model.current
        labels = Text("\n").join(
            render_conversation_label(c, c is current) for c in self.model.conversations.values()
        )
        self.query_one("#conversations", Clickable).update(labels)
        members = Text(no_wrap=True, overflow="ellipsis")
        if current.kind is Kind.ROOM:
            nicks = current.member_nicks()
            members.append(f"{len(nicks)} member{'s' if len(nicks) != 1 else ''}\n", style="bold")
            for nick in nicks:
                members.append(current.shown_member(nick) + "\n", style=nick_colour(nick))
        self.query_one("#members", Static).update(members)
        topic = Text(no_wrap=True, overflow="ellipsis")
        topic.append(current.title, style="bold")
        if current.kind is Kind.ROOM:
            topic.append(f"  {current.topic}" if current.topic else "  (no topic)", style="" if current.topic
                         else "italic bright_black")
        elif current.kind is Kind.PRIVATE:
            topic.append("  private conversation", style="italic bright_black")
        self.query_one("#topic", Static).update(topic)

    def _refresh_status(self) -> None:
        with contextlib.suppress(NoMatches):  # the app is closing (its timer may fire as the widgets go)
            self._draw_status()

    def _draw_status(self) -> None:
        if not self._mounted():
            return
        core = self.core
        narrow = self.screen.has_class("-narrow")  # no conversation list: the status line lists the activity
        status = Text(no_wrap=True, overflow="ellipsis")
        if not narrow:
            status.append(f" {core.server_label} ", style="bold")
            status.append("│")
        nick = self.model.nick or core.wanted_nick or "(no nick yet)"
        status.append(" ")
        status.append(nick, style=nick_colour(nick) if self.model.nick else "italic")
        status.append(" │ ")
        status.append(self.model.current.title)
        if self.model.current.fetching:
            status.append(" (fetching older messages…)", style="italic")
        status.append(" │ ")
        state, style = self._connection_state()
        status.append(state.split(" ", 1)[0] if narrow and core.online else state, style=style)
        if narrow:
            activity = render_activity(list(self.model.conversations.values()))
            if activity:
                status.append(" │ ")
                status.append_text(activity)
        lag = core.outgoing.current_lag()
        if core.online and lag is not None:
            status.append(f" │ lag {_seconds(lag)}", style="bold red" if lag >= 5 else "")
        unread = sum(c.unread for c in self.model.conversations.values())
        if unread and not narrow:
            status.append(f" │ {unread} unread", style="bold yellow")
        self.query_one("#status", Static).update(status)
        self._refresh_more_below()
        field = self.query_one(ChatInput)
        if not self._quitting:
            field.placeholder = self._placeholder()
            field.password = self.core.password_for is not None  # the password the server asked for: hidden

    def _refresh_more_below(self) -> None:
        more = self.query_one("#more-below", Static)
        scrollback = self._current_scrollback()
        below = scrollback is not None and not scrollback.following
        more.display = below
        if below and scrollback is not None:
            news = f"{scrollback.new_below} new below" if scrollback.new_below else "more below"
            more.update(Text(f" ▼ {news}: End jumps down ", style="bold reverse"))

    def _connection_state(self) -> tuple[str, str]:
        core = self.core
        if core.phase is Phase.ONLINE:
            return "● connected", "green"
        if core.phase is Phase.CLOSED:
            return "○ closed", "bright_black"
        if core.phase in (Phase.CONNECTING, Phase.REGISTERING):
            return ("● choose a nickname", "yellow") if core.needs_nick else ("◌ connecting…", "yellow")
        if core.retry_at is not None:
            wait = max(0, round(core.retry_at - time.monotonic()))
            why = f": {core.last_error}" if core.last_error else ""
            return f"○ disconnected{why}; retrying in {wait}s (/reconnect)", "bold red"
        return "○ disconnected", "bold red"

    def _placeholder(self) -> str:
        core = self.core
        if self._search is not None:
            return "Search back: type; Ctrl-R finds older, Enter stays there, Esc goes back down"
        if self._paste is not None:
            return f"Send the {len([x for x in self._paste[0] if x.strip()])} pasted lines? Enter: yes; Esc: no"
        if core.needs_nick:
            return "Type a nickname and press Enter"
        if core.password_for is not None:
            return f"The password of {core.password_for} (it is not shown), or /nick another name"
        if not core.online:
            return "Not connected…"
        current = self.model.current
        if current.kind is Kind.SERVER:
            return "/join ROOM to start; /help lists the commands"
        return f"Message {current.title}  (/help, Tab completes, Ctrl-C quits)"


def _seconds(lag: float) -> str:
    return f"{lag * 1000:.0f} ms" if lag < 1 else f"{lag:.1f} s"


def run_tui(host: str, port: int, nick: str | None, room: str | None, config: ClientConfig | None = None,
            password: str | None = None, tls: ssl.SSLContext | None = None) -> int:
    app = ChatApp(host, port, nick, room, config=config, password=password, tls=tls)
    result = app.run()
    return result or 0
