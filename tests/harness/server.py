"""A real server on 127.0.0.1:0 in a thread of the test process, stopped the way SIGTERM stops it."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from chat.server.app import NATIVE_TLS, ChatServer
from chat.server.config import ServerConfig
from harness.clients import WAIT, LineClient, wait_for
from harness.irc import IrcClient
from harness.web import WebSocketClient

T = TypeVar("T")


class ServerThread:
    """A ChatServer serving from a thread. `stop()` shuts it down the way SIGTERM does and joins."""

    def __init__(self, config: ServerConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.server = ChatServer(config, clock)
        self.host, self.port = self.server.start()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, name="chat-server", daemon=True)
        self.thread.start()
        assert self.server.ready.wait(WAIT)

    def _serve(self) -> None:
        try:
            self.server.serve_forever()
        except BaseException as e:  # surfaced by stop()
            self.error = e
            raise

    @property
    def loop(self) -> Any:
        return self.server.loop

    def inspect(self, fn: Callable[[Any], T]) -> T:
        """`fn(loop)`, run on the loop thread (chat state belongs to it), and its result."""
        return self.loop.call_soon(lambda: fn(self.loop)).result(WAIT)

    def wait_until(self, condition: Callable[[Any], bool], what: str = "condition") -> None:
        """Wait, with a deadline, until `condition(loop)` holds on the loop thread."""
        wait_for(lambda: self.inspect(condition), what=what)

    @property
    def web_address(self) -> tuple[str, int]:
        address = self.server.web_address
        assert address is not None, "started without web_port"
        return address

    @property
    def web_url(self) -> str:
        host, port = self.web_address
        return f"http://{host}:{port}/"

    def web_client(self, nick: str | None = None, **kwargs: Any) -> WebSocketClient:
        """A WebSocket client of the web door (start the server with web_port=0)."""
        c = WebSocketClient(*self.web_address, **kwargs)
        if nick:
            c.register(nick)
        return c

    @property
    def https_address(self) -> tuple[str, int]:
        address = self.server.https_address
        assert address is not None, "started without https_port"
        return address

    @property
    def https_url(self) -> str:
        host, port = self.https_address
        return f"https://{host}:{port}/"

    def wss_client(self, tls: ssl.SSLContext, nick: str | None = None, **kwargs: Any) -> WebSocketClient:
        """A WebSocket client of the web door over TLS (https_port=0), trusting what `tls` trusts."""
        c = WebSocketClient(*self.https_address, tls=tls, **kwargs)
        if nick:
            c.register(nick)
        return c

    @property
    def tls_port(self) -> int:
        return self.server.loop.door_address(NATIVE_TLS)[1]  # type: ignore[union-attr]

    def client(self, nick: str | None = None, **kwargs: Any) -> LineClient:
        c = LineClient(self.host, self.port, **kwargs)
        if nick:
            c.register(nick)
        return c

    def tls_client(self, tls: ssl.SSLContext, nick: str | None = None, **kwargs: Any) -> LineClient:
        """A client of the TLS door, trusting what `tls` trusts."""
        c = LineClient(self.host, self.tls_port, tls=tls, **kwargs)
        if nick:
            c.register(nick)
        return c

    def irc_client(self, nick: str | None = None, caps: tuple[str, ...] = (), **kwargs: Any) -> IrcClient:
        """A client of the IRC door (start the server with irc_port=0), registered as `nick` when given."""
        c = IrcClient(*self.server.loop.door_address("irc"), **kwargs)  # type: ignore[union-attr]
        if nick:
            c.register(nick, caps)
        return c

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "server did not stop within 30 s"
        if self.error:
            raise self.error


def server_config(db: str, **overrides: Any) -> ServerConfig:
    """Defaults for tests: any free port, no flood control (tests send fast), keepalive as in production, and the
    cheapest argon2id (the default profile is tested on its own: test_accounts.py)."""
    base = ServerConfig(host="127.0.0.1", port=0, db=db, rate=0, password_profile="test")
    return replace(base, **overrides)
