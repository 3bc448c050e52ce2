"""The full-screen client: conversations on the left, the scrollback, members on the right, status and input.

The app only shows the model and forwards what the user does: the protocol is in core.py, the I/O and
reconnecting in session.py. After anything happens the view is brought up to date in `sync_view`, which
replays the model's scrollback inserts into each conversation's `Scrollback`.
"""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import ContentSwitcher, Input, Static

from chat.client.core import ClientCore, Outcome, Phase
from chat.client.model import ClientModel, Conversation, Kind
from chat.client.session import ClientSession, ReconnectPolicy
from chat.client.tui.render import nick_colour, render_conversation_label, render_entry
from chat.client.tui.widgets import ChatInput, Clickable, Scrollback


class ChatApp(App[int]):
    CSS_PATH = "chat.tcss"
    TITLE = "chat"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+c", "quit_chat", "Quit", priority=True, show=False),
        Binding("ctrl+q", "quit_chat", "Quit", priority=True, show=False),
        Binding("ctrl+n,alt+right", "cycle(1)", "Next conversation", priority=True, show=False),
        Binding("ctrl+p,alt+left", "cycle(-1)", "Previous conversation", priority=True, show=False),
        Binding("pageup", "page(-1)", "Scroll up", priority=True, show=False),
        Binding("pagedown", "page(1)", "Scroll down", priority=True, show=False),
        *(Binding(f"alt+{n}", f"show({n - 1})", show=False) for n in range(1, 10)),
    ]

    def __init__(self, host: str, port: int, nick: str | None = None, room: str | None = None,
                 policy: ReconnectPolicy | None = None) -> None:
        super().__init__()
        self.core = ClientCore(nick, room, f"{host}:{port}")
        self.session = ClientSession(self.core, host, port, policy, on_change=self.sync_view)
        self.scrollbacks: dict[Conversation, Scrollback] = {}
        self._counter = 0
        self._quitting = False

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

    # ------------------------------------------------------------------------------------ user actions

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        field = self.query_one(ChatInput)
        line = event.value
        field.history.add(line)
        outcome = self.session.submit(line)
        if outcome is not Outcome.KEPT:
            field.value = ""
        if outcome is Outcome.QUIT:
            await self.action_quit_chat()

    def on_chat_input_complete(self, _: ChatInput.Complete) -> None:
        self.query_one(ChatInput).complete_with(self.core.typed.verbs, self.model.known_nicks(),
                                                self.model.room_names())

    async def on_chat_input_quit_request(self, _: ChatInput.QuitRequest) -> None:
        await self.action_quit_chat()

    def on_scrollback_reached_top(self, message: Scrollback.ReachedTop) -> None:
        if message.scrollback.key == self.model.current_key:
            self.session.fetch_older(message.scrollback.key)

    async def action_quit_chat(self) -> None:
        if self._quitting:
            return
        self._quitting = True
        self.query_one(ChatInput).placeholder = "Leaving…"
        await self.session.quit()
        self.exit(0)

    def action_cycle(self, step: int) -> None:
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

    def _pick_conversation(self, index: int) -> None:
        keys = list(self.model.conversations)
        if 0 <= index < len(keys):
            self.model.select(keys[index])
            self.sync_view()

    # -------------------------------------------------------------------------------------------- view

    def sync_view(self) -> None:
        """Bring every widget up to date with the model."""
        if not self._mounted():
            return
        switcher = self.query_one(ContentSwitcher)
        inserts = self.model.take_inserts()
        fresh: set[Conversation] = set()
        for conversation in list(self.scrollbacks):
            if self.model.conversations.get(conversation.key) is not conversation:
                self.scrollbacks.pop(conversation).remove()
        for conversation in self.model.conversations.values():
            if conversation not in self.scrollbacks:
                self._counter += 1
                texts = [render_entry(e) for e in conversation.entries]
                scrollback = Scrollback(conversation.key, texts, id=f"conversation-{self._counter}")
                self.scrollbacks[conversation] = scrollback
                switcher.mount(scrollback)
                fresh.add(conversation)
            self.scrollbacks[conversation].key = conversation.key
        for insert in inserts:
            target = self.model.get(insert.key)
            if target is not None and target not in fresh and target in self.scrollbacks:
                self.scrollbacks[target].insert(insert.index, render_entry(insert.entry))
        current = self._current_scrollback()
        if current is not None and switcher.current != current.id:
            switcher.current = current.id
        self._refresh_lists()
        self._refresh_status()

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
                members.append(nick + "\n", style=nick_colour(nick))
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
        if not self._mounted():
            return
        core = self.core
        status = Text(no_wrap=True, overflow="ellipsis")
        status.append(f" {core.server_label} ", style="bold")
        status.append("│ ")
        nick = self.model.nick or core.wanted_nick or "(no nick yet)"
        status.append(nick, style=nick_colour(nick) if self.model.nick else "italic")
        status.append(" │ ")
        status.append(self.model.current.title)
        if self.model.current.fetching:
            status.append(" (fetching older messages…)", style="italic")
        status.append(" │ ")
        status.append(*self._connection_state())
        unread = sum(c.unread for c in self.model.conversations.values())
        if unread:
            status.append(f" │ {unread} unread", style="bold yellow")
        self.query_one("#status", Static).update(status)
        field = self.query_one(ChatInput)
        if not self._quitting:
            field.placeholder = self._placeholder()

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
        if core.needs_nick:
            return "Type a nickname and press Enter"
        if not core.online:
            return "Not connected…"
        current = self.model.current
        if current.kind is Kind.SERVER:
            return "/join ROOM to start; /help lists the commands"
        return f"Message {current.title}  (/help, Tab completes, Ctrl-C quits)"


def run_tui(host: str, port: int, nick: str | None, room: str | None) -> int:
    app = ChatApp(host, port, nick, room)
    result = app.run()
    return result or 0
