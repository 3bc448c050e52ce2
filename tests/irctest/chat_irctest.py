"""irctest's controller for this server: `chat serve` with its IRC door on the port irctest gives, in a
temporary folder with its own SQLite file. irctest loads it by module name: put this folder on PYTHONPATH and
run irctest with `--controller chat_irctest` (tests/test_irctest.py, scripts/irctest.py)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from irctest.basecontrollers import BaseServerController, DirectoryBasedController
from irctest.runner import NotImplementedByController


def chat_command() -> list[str]:
    script = Path(sys.executable).with_name("chat")
    return [str(script)] if script.exists() else [sys.executable, "-m", "chat"]


OPER_NAME, OPER_PASSWORD = "operuser", "operpassword"  # what irctest's OPER tests give


class ChatController(BaseServerController, DirectoryBasedController):
    software_name = "chat"
    supported_sasl_mechanisms = frozenset({"PLAIN"})
    supports_sts = False

    def run(self, hostname: str, port: int, *, password: str | None, ssl: bool, run_services: bool,
            faketime: str | None, websocket_hostname: str | None, websocket_port: int | None) -> None:
        if websocket_hostname is not None or websocket_port is not None:
            raise NotImplementedByController("Websocket")
        if password is not None:
            raise NotImplementedByController("PASS (a server password): accounts log in with SASL")
        if ssl:
            raise NotImplementedByController("TLS in irctest (tested by our own suite)")
        assert self.proc is None
        self.port, self.hostname = port, hostname
        self.create_config()
        assert self.directory
        self.db = str(Path(self.directory) / "chat.sqlite")
        _, native_port = self.get_hostname_and_port()
        faketime_cmd: list[str] = []
        if faketime and shutil.which("faketime"):
            faketime_cmd = ["faketime", "-f", faketime]
            self.faketime_enabled = True
        self.proc = self.execute([
            *faketime_cmd, *chat_command(), "serve", "--db", self.db, "--host", hostname, "--port",
            str(native_port), "--irc-port", str(port), "--lobby", "", "--rate", "0", "--password-profile", "test",
            "--log-level", "warning", "--server-name", "My.Little.Server",
        ])
        # irctest's operator (OPER operuser operpassword): here an admin account, as `chat users admin` makes one
        self._add_account(OPER_NAME, OPER_PASSWORD, admin=True)

    def wait_for_services(self) -> None:
        """Accounts are the server's own: there are no services to wait for."""
        self.wait_for_port()

    def registerUser(self, case: Any, username: str, password: str | None = None) -> None:
        """An account, written as /register writes one: straight into the database, because irctest's
        passwords ("sesame") are shorter than our rule lets `chat users add` take."""
        self._add_account(username, password or "sesame")

    def _add_account(self, username: str, password: str, admin: bool = False) -> None:
        from chat.passwords import Hasher
        from chat.protocol.names import name_key
        from chat.storage.accounts import AccountStore
        from chat.storage.database import make_engine

        self.wait_for_port()  # the server has created its database
        engine = make_engine(self.db)
        try:
            store = AccountStore(engine)
            store.register(username, name_key(username), Hasher("test").hash(password))
            if admin:
                store.set_admin(name_key(username), True)
        finally:
            engine.dispose()


def get_irctest_controller_class() -> type[ChatController]:
    return ChatController
