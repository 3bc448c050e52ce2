"""Real IRC clients on the IRC door: WeeChat (weechat-headless, driven through its FIFO) beside a native client,
and native, JSON and IRC clients in one busy room."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import WAIT, LineClient, ServerThread, wait_for

WEECHAT = shutil.which("weechat-headless")


class WeeChat:
    """weechat-headless in a folder of its own; `command` writes to its FIFO, `log` reads a buffer's log file."""

    def __init__(self, home: Path, port: int, nick: str) -> None:
        self.home = home
        setup = ";".join([
            "/set logger.file.flush_delay 0", "/set logger.file.auto_log on", "/set irc.look.server_buffer independent",
            f"/server add chat 127.0.0.1/{port} -notls -nicks={nick} -autojoin=#dev",
            "/set irc.server.chat.sasl_mechanism plain", "/connect chat",
        ])
        assert WEECHAT is not None
        self.proc = subprocess.Popen([WEECHAT, "--dir", str(home), "--no-script", "-r", setup],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def fifo(self) -> Path | None:
        found = list(self.home.glob("weechat_fifo*"))
        return found[0] if found else None

    def command(self, buffer: str, text: str) -> None:
        wait_for(lambda: self.fifo is not None, what="weechat's FIFO")
        with open(self.fifo, "w") as fifo:  # type: ignore[arg-type]
            fifo.write(f"{buffer} *{text}\n")

    def log(self, buffer: str) -> str:
        found = [p for p in self.home.rglob("*.weechatlog") if buffer in p.name]
        return found[0].read_text(errors="replace") if found else ""

    def wait_log(self, buffer: str, text: str) -> None:
        wait_for(lambda: text in self.log(buffer), timeout=WAIT * 2, what=f"{text!r} in weechat's {buffer} log")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(WAIT)


@pytest.fixture
def weechat(tmp_path: Path) -> Iterator[Callable[[int, str], WeeChat]]:
    if WEECHAT is None:
        pytest.skip("weechat-headless is not installed (Debian: apt-get install weechat-headless)")
    started: list[WeeChat] = []

    def start(port: int, nick: str) -> WeeChat:
        client = WeeChat(tmp_path / f"weechat-{nick}", port, nick)
        started.append(client)
        return client

    yield start
    for client in started:
        client.stop()


def test_weechat_joins_chats_with_a_native_user_gets_the_backlog_and_pages_history(
        make_server: Callable[..., ServerThread], weechat: Callable[[int, str], WeeChat]) -> None:
    server = make_server(irc_port=0, backlog=3)
    native = server.client("ncuser")
    native.send("/join dev")
    native.expect("You joined #dev")
    for i in range(1, 6):
        native.send(f"earlier message {i}")
    native.sync()
    client = weechat(server.loop.door_address("irc")[1], "weebot")
    native.expect("weebot joined")
    client.wait_log("#dev", "earlier message 5")  # the join backlog: the last 3
    assert "earlier message 2" not in client.log("#dev")
    client.command("irc.chat.#dev", "hello from weechat")
    native.expect("weebot: hello from weechat")
    native.send("hello from nc")
    client.wait_log("#dev", "hello from nc")
    client.command("irc.chat.#dev", "/quote CHATHISTORY LATEST #dev * 10")  # paging further back
    client.wait_log("#dev", "earlier message 1")


def test_native_json_and_irc_clients_in_one_busy_room_see_one_order(server_with_irc: ServerThread) -> None:
    server = server_with_irc
    native = server.client("nat")
    js = server.client("jsn", json_mode=True)
    irc = server.irc_client("irk", caps=("message-tags", "echo-message"))
    for c in (native, js):
        c.send("/join mix")
    native.expect("You joined #mix")
    js.expect_event("joined", room="mix")
    irc.send("JOIN #mix")
    irc.expect(" 366 irk #mix ")
    per_sender = 150

    def send_lines(send: Callable[[str], None], name: str) -> None:
        for i in range(per_sender):
            send(f"{name} {i}")

    senders = [
        threading.Thread(target=send_lines, args=(lambda t: native.send(t), "nat")),
        threading.Thread(target=send_lines, args=(lambda t: js.send(t), "jsn")),
        threading.Thread(target=send_lines, args=(lambda t: irc.send(f"PRIVMSG #mix :{t}"), "irk")),
    ]
    for t in senders:
        t.start()
    for t in senders:
        t.join(WAIT)
    total = 3 * per_sender
    # the order each client saw, as (sender, number) pairs
    js_seen = _json_messages(js, total)
    irc_seen = _irc_messages(irc, total)
    native_seen = _native_messages(native, total)
    assert len(js_seen) == total and len(set(js_seen)) == total  # no duplicate, no gap
    assert irc_seen == js_seen
    assert native_seen == js_seen
    for name in ("nat", "jsn", "irk"):  # each sender's own order kept
        numbers = [int(text.split()[1]) for nick, text in js_seen if nick == name]
        assert numbers == list(range(per_sender))


@pytest.fixture
def server_with_irc(make_server: Callable[..., ServerThread]) -> ServerThread:
    return make_server(irc_port=0)


def _read(c: LineClient, count: int, pick: Callable[[str], tuple[str, str] | None]) -> list[tuple[str, str]]:
    """The first `count` messages `pick` finds in what `c` receives, as (nick, text), in order."""
    found: list[tuple[str, str]] = []
    deadline = time.monotonic() + WAIT * 3
    while len(found) < count:
        line = c.expect(lambda line: pick(line) is not None, max(0.1, deadline - time.monotonic()))
        found.append(pick(line))  # type: ignore[arg-type]
    return found


def _json_messages(c: LineClient, count: int) -> list[tuple[str, str]]:
    def pick(line: str) -> tuple[str, str] | None:
        if '"type":"message"' not in line:
            return None
        event = json.loads(line)
        return event["nick"], event["text"]

    return _read(c, count, pick)


def _irc_messages(c: LineClient, count: int) -> list[tuple[str, str]]:
    def pick(line: str) -> tuple[str, str] | None:
        if " PRIVMSG #mix :" not in line:
            return None
        words = line.split(" ")
        source = words[1] if line.startswith("@") else words[0]
        return source.lstrip(":").split("!")[0], line.split(" PRIVMSG #mix :", 1)[1]

    return _read(c, count, pick)


def _native_messages(c: LineClient, count: int) -> list[tuple[str, str]]:
    def pick(line: str) -> tuple[str, str] | None:
        if not line.startswith("[#mix] ") or line.startswith("[#mix] ***"):
            return None
        nick, _, text = line[len("[#mix] "):].partition(": ")
        return nick, text

    return _read(c, count, pick)
