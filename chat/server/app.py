"""ChatServer: wires storage, state, services and the event loop together, and runs them."""

from __future__ import annotations

import gc
import logging
import os
import resource
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from types import FrameType

from sqlalchemy import Engine

from chat.passwords import Hasher
from chat.protocol.native import NativeCodec
from chat.server.account_worker import AccountWorkers
from chat.server.cluster import Cluster, ClusterLink
from chat.server.config import ServerConfig
from chat.server.loop import EventLoop
from chat.server.service import ChatService
from chat.server.state import ChatState
from chat.server.storage_worker import StorageReader, StorageWorker
from chat.server.tls import ServerTLS
from chat.storage.accounts import AccountStore
from chat.storage.checkpoint import AUTOCHECKPOINT_PAGES, WalCheckpointer
from chat.storage.cluster import PROVISIONAL, ClusterWriter, prepare_node, reap_node
from chat.storage.database import DatabaseUnusable, database_errors, make_engine, upgrade
from chat.storage.lock import ServerLock
from chat.storage.pending_list import PendingListCleaner
from chat.storage.repository import ChatStore

log = logging.getLogger("chat.server")


NATIVE_TLS = "native-tls"  # the door of the native protocol over TLS
WEB, WEB_TLS = "web", "web-tls"  # the web client's doors: over http, and over https
IRC, IRC_TLS = "irc", "irc-tls"  # the IRC door (chat.protocol.irc), and its twin over TLS


class ChatServer:
    """`start()` binds and loads; `serve_forever()` runs until `stop()` or SIGINT/SIGTERM. SIGHUP reloads the TLS
    certificate."""

    def __init__(self, config: ServerConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.engine: Engine | None = None
        self.loop: EventLoop | None = None
        self.tls: ServerTLS | None = None  # the certificate of every TLS door, and their transport factory
        self.ready = threading.Event()
        self._lock: ServerLock | None = None
        self._checkpointer: WalCheckpointer | None = None
        self._cleaner: PendingListCleaner | None = None  # PostgreSQL: the search index's pending list

    @property
    def address(self) -> tuple[str, int]:
        assert self.loop is not None, "start() first"
        return self.loop.address

    @property
    def web_address(self) -> tuple[str, int] | None:
        """Where the web client is served (None: no --web-port)."""
        assert self.loop is not None, "start() first"
        return self.loop.door_address(WEB) if self.config.web_port is not None else None

    @property
    def https_address(self) -> tuple[str, int] | None:
        """Where the web client is served over TLS (None: no --https-port)."""
        assert self.loop is not None, "start() first"
        return self.loop.door_address(WEB_TLS) if self.config.https_port is not None else None

    @property
    def doors(self) -> list[tuple[str, tuple[str, int]]]:
        """Every door's name and address, in the order they were opened."""
        assert self.loop is not None, "start() first"
        return [(door.name, door.address) for door in self.loop.doors.values()]

    def start(self) -> tuple[str, int]:
        """Read the TLS certificate, open and upgrade the database, load rooms and recent messages, and listen.
        Returns the (host, port) of the native door (plain, else TLS). Raises TLSSetupError for a certificate or
        key that cannot be used (before the database is touched), DatabaseUnusable (with SchemaTooNew),
        DatabaseInUse or OSError (the address)."""
        if self.config.tls:
            assert self.config.tls_cert is not None and self.config.tls_key is not None
            self.tls = ServerTLS(self.config.tls_cert, self.config.tls_key)
        raise_open_file_limit()
        try:
            with database_errors(self.config.db):  # one line saying why, instead of a driver's traceback
                self.engine = make_engine(self.config.db, busy_timeout_ms=int(self.config.busy_timeout * 1000),
                                          checkpoint_pages=AUTOCHECKPOINT_PAGES)
                config_cluster = self.config.cluster
                if config_cluster and self.engine.dialect.name != "postgresql":
                    raise DatabaseUnusable("--cluster needs PostgreSQL: SQLite stays single-node")
                self._lock = ServerLock(self.engine, shared=config_cluster)
                self._lock.acquire()
                upgrade(self.engine)
                node = self.node_name()
                if config_cluster:
                    prepare_node(self.engine, node)
                if self.engine.dialect.name == "sqlite":
                    self._checkpointer = WalCheckpointer(self.engine)
                    self._checkpointer.start()
                elif self.engine.dialect.name == "postgresql":
                    self._cleaner = PendingListCleaner(self.engine)
                    self._cleaner.start()
                store = ChatStore(self.engine, node=node if config_cluster else None)
                state = self._load(store)
                if config_cluster:  # ids the database replaces with real ones in the writer's transaction
                    state.next_message_id = state.next_room_id = PROVISIONAL
            # Everything alive now (imported libraries, loaded rooms) lives as long as the server: keep it out of
            # the cyclic collector's scans. In the profile the collector took 18% of the interpreter under load,
            # walking the ~85,000 objects of the imports again and again.
            gc.collect()
            gc.freeze()
            config = self.config = replace(self.config, node=node)
            service = ChatService(state, config, self.clock)
            budget = config.page_budget
            hasher = Hasher(config.password_profile)
            writer = ClusterWriter(node) if config_cluster else None
            self.loop = EventLoop(config, state, service,
                                  lambda wake: (StorageWorker(store, wake, writer, config.index_when_idle),
                                                StorageReader(store, wake, budget, config.search_budget)),
                                  accounts=lambda wake: AccountWorkers(AccountStore(store.engine), hasher, wake,
                                                                       config.password_threads, config.password_queue))
            if config_cluster:
                cluster = self.loop.cluster = Cluster(service, node)
                cluster.link = ClusterLink(self.engine, node, config.node_timeout, self.loop.wake,
                                           config.events_kept)
            address = self._open_doors(self.loop)
        except BaseException:
            self._release()
            raise
        return address

    def node_name(self) -> str:
        """This node's name in a cluster: --node, else the host name and the port (the process id for port 0)."""
        if self.config.node:
            return self.config.node
        return f"{socket.gethostname()}:{self.config.port or os.getpid()}"[:64]

    def _open_doors(self, loop: EventLoop) -> tuple[str, int]:
        """The native protocol, plain and over TLS; the web client's, over http and https. Every other door's TLS
        twin is one line like the second:
        `loop.add_door("irc-tls", host, port, irc_codec, self.tls)`."""
        config = self.config
        if config.plain:
            loop.listen()
        if self.tls is not None:
            loop.add_door(NATIVE_TLS, config.host, config.tls_port, lambda: NativeCodec(config.max_line), self.tls)
        if config.irc_port is not None or config.ircs_port is not None:
            from chat.protocol.irc import IrcCodec

            def irc_codec() -> IrcCodec:
                return IrcCodec(config.server_name, config.server_info, config.irc_password)

            if config.irc_port is not None:
                loop.add_door(IRC, config.host, config.irc_port, irc_codec)
            if config.ircs_port is not None and self.tls is not None:
                loop.add_door(IRC_TLS, config.host, config.ircs_port, irc_codec, self.tls)
        if config.web_port is not None or config.https_port is not None:
            from chat.web import web_codec  # the page's files are read only when it is served

            if config.web_port is not None:
                loop.add_door(WEB, config.host, config.web_port, web_codec(config))
            if config.https_port is not None:
                assert self.tls is not None  # ServerConfig insists on the files
                loop.add_door(WEB_TLS, config.host, config.https_port, web_codec(config, https=True), self.tls)
        return loop.address

    def _load(self, store: ChatStore) -> ChatState:
        """Where the counters continue. Rooms are read when someone joins them, so a start takes two queries
        however many rooms the database holds."""
        loaded = store.load()
        state = ChatState(self.config.backlog)
        state.next_message_id = loaded.last_message_id + 1
        state.next_room_id = loaded.last_room_id + 1
        return state

    def serve_forever(self) -> None:
        assert self.loop is not None, "start() first"
        self.ready.set()
        try:
            self.loop.run()
        finally:
            self._release()

    def stop(self) -> None:
        """Ask the server to shut down (from any thread): store what was accepted, say goodbye, close."""
        if self.loop is not None:
            self.loop.request_stop()

    def reload_tls(self) -> Future[bool]:
        """Read the certificate and key again, on the loop thread (from any thread, or a signal handler: this only
        queues the call and wakes the loop). Its result: whether the new files are served."""
        assert self.loop is not None and self.tls is not None, "start() with TLS first"
        return self.loop.call_soon(self.tls.reload)

    def install_signal_handlers(self) -> None:
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("%s: shutting down", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        if self.tls is not None:  # certbot renews; `systemctl reload` and deploy hooks send SIGHUP
            signal.signal(signal.SIGHUP, lambda _signum, _frame: self.reload_tls())

    def _release(self) -> None:
        if self.config.cluster and self.engine is not None and self.config.node and self.loop is not None:
            try:  # its users are gone: say so now rather than after --node-timeout, and free their nicks
                with self.engine.begin() as conn:
                    reap_node(conn, self.config.node, by=self.config.node, reason="its server shut down")
            except Exception as e:
                log.warning("cluster: could not announce this node's users gone: %s", e)
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._cleaner is not None:
            self._cleaner.stop()
            self._cleaner = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self.engine is not None:
            self.engine.dispose()


def raise_open_file_limit() -> int:
    """Let the server hold as many connections as the hard limit allows. Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as e:
            log.warning("could not raise the open-file limit from %d: %s", soft, e)
    return soft
