"""Server settings and limits. Every field is a `chat serve` option (see `chat serve --help`),
and its default here is the only one: the CLI reads it from `DEFAULTS`."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from chat.protocol.errors import ChatError
from chat.protocol.names import check_room
from chat.server.addresses import peer_address

DEFAULT_PORT = 33000  # the classic tutorial's port
DEFAULT_TLS_PORT = 33443  # the native protocol over TLS (443's digits, as 6697 is IRC's)
LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")
ORIGIN_RE = re.compile(r"https?://[^/\s]+")  # what --web-origin takes (besides *)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    db: str = "chat.sqlite"
    backlog: int = 50  # recent messages a newcomer to a room is sent
    lobby: str | None = "lobby"  # the room everyone is placed in once named
    server_name: str = "chat"
    # limits
    max_line: int = 4096  # bytes in one incoming line, newline excluded
    sendq: int = 1 << 20  # bytes waiting to be sent to one client before it is disconnected
    rate: float = 5.0  # lines per second a client may send, sustained (0: no flood control)
    burst: int = 20  # lines a client may send at once before being slowed
    flood_limit: int = 100  # lines waiting because of flood control before the client is disconnected
    nick_timeout: float = 60.0  # seconds to choose a nickname before being disconnected
    max_clients: int = 10_000
    max_per_ip: int = 20  # connections from one address (exempt networks excluded)
    max_rooms_per_client: int = 100  # rooms one client may be in at once
    # in a room of more than this many members, joins, leaves and quits are not announced (0: always announced):
    # past a few hundred people they are most of what a room shows, and each costs a line to every member
    quiet_above: int = 200
    new_rooms_per_minute: float = 10.0  # rooms one client may create, sustained...
    new_rooms_burst: int = 10  # ...and at once
    exempt: tuple[str, ...] = LOOPBACK_NETWORKS  # networks free of the per-address limit
    keepalive: int = 60  # seconds of silence before TCP keepalive probes; a dead peer goes in about 2x this
    # seconds an IRC client may be silent before the server sends it PING; silent as long again (no PONG, nothing),
    # it is closed with ERROR (Ping timeout). 0: never. Native clients have no PING to answer (docs/PROTOCOL.md)
    ping_timeout: float = 120.0
    listen_backlog: int = 4096  # connections the kernel may queue before we accept them
    busy_timeout: float = 5.0  # seconds a write waits for a lock held by someone else (SQLite, PostgreSQL)
    # seconds the writer must have had nothing to write before it indexes older messages for search (those stored
    # before the index existed: chat.storage.search_index), a short batch at a time; 0: never (`chat index` does it)
    index_when_idle: float = 0.5
    search_budget: float = 1.0  # seconds one /search page may take before it is refused (search_timeout)
    # the web client (chat.web): its ports (None: no such door; https needs the TLS files), and origins allowed
    # besides the page's own
    web_port: int | None = None
    https_port: int | None = None
    web_origins: tuple[str, ...] = ()
    # accounts
    password_profile: str = "rfc9106-low-memory"  # argon2id parameters (chat.passwords.PROFILES); "test": cheap
    password_threads: int = 2  # threads hashing and checking passwords (chat.server.account_worker)
    password_queue: int = 8  # password checks that may wait for a thread; more are refused (server_busy)
    login_burst: int = 3  # failed logins allowed at once, per account and per address...
    login_per_minute: float = 3.0  # ...and a minute, sustained (then login_throttled says how long to wait)
    register_burst: int = 5  # accounts one address may register at once (exempt networks: any number)...
    register_per_minute: float = 1.0  # ...and a minute, sustained
    throttle_keys: int = 10_000  # accounts and addresses each limiter remembers at most
    offline_max: int = 100  # private messages that may wait for one offline account
    # TLS: on when both files are given; the same certificate serves every TLS door (see chat.server.tls)
    tls_cert: str | None = None  # PEM: the server's certificate, then its chain (certbot's fullchain.pem)
    tls_key: str | None = None  # PEM: its private key, unencrypted (certbot's privkey.pem)
    tls_port: int = DEFAULT_TLS_PORT  # the native protocol over TLS
    plain: bool = True  # also serve the native protocol without TLS on `port`
    tls_handshake_timeout: float = 10.0  # seconds a new TLS connection has to finish its handshake
    # the IRC door (chat.protocol.irc): its port and its TLS twin's (None: that door is closed)
    irc_port: int | None = None
    ircs_port: int | None = None
    # several nodes on one PostgreSQL database (chat.server.cluster, docs/CLUSTER.md)
    cluster: bool = False
    node: str | None = None  # this node's name in the cluster (None: the host name and the port)
    node_timeout: float = 10.0  # seconds without a heartbeat before a node's users are announced gone
    events_kept: float = 300.0  # seconds room events are kept at least, before pruning (docs/CLUSTER.md)
    exempt_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(init=False)

    def __post_init__(self) -> None:
        networks = tuple(ipaddress.ip_network(n, strict=False) for n in self.exempt)
        object.__setattr__(self, "exempt_networks", networks)
        if not self.host.strip():  # an empty host means every interface to bind(): never by accident
            raise ValueError("the host is empty; give an address to listen on, such as 127.0.0.1 "
                             "(0.0.0.0 or :: for every interface)")
        if self.lobby is not None:
            try:
                object.__setattr__(self, "lobby", check_room(self.lobby))  # stored without its #
            except ChatError as e:
                raise ValueError(f"lobby: {e.message}") from None
        if self.max_line < 64:
            raise ValueError("max_line must be at least 64 bytes")
        if self.sendq < 4 * self.max_line:
            raise ValueError("sendq must hold at least four maximal lines")
        for origin in self.web_origins:
            if origin != "*" and ORIGIN_RE.fullmatch(origin) is None:
                raise ValueError(f"--web-origin {origin!r} is not an origin: scheme://host[:port] "
                                 "(e.g. https://chat.example.com), or *")
        if self.password_threads < 1 or self.password_queue < 0:
            raise ValueError("password_threads must be at least 1, password_queue at least 0")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both a certificate and its key (--tls-cert and --tls-key)")
        if self.https_port is not None and not self.tls:
            raise ValueError("--https-port needs a certificate: give --tls-cert and --tls-key too")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,62}", self.server_name):
            raise ValueError("--server-name: letters, digits, dots and dashes (it is IRC's message source)")
        if self.ircs_port is not None and not self.tls:
            raise ValueError("--ircs-port is IRC over TLS: give --tls-cert and --tls-key too")
        if self.cluster and not self.db.startswith("postgresql"):
            raise ValueError("--cluster needs PostgreSQL (--db postgresql+psycopg://...): SQLite stays single-node")
        if self.node is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.:_\-]{0,63}", self.node):
            raise ValueError("--node: letters, digits, dots, colons, underscores and dashes (64 at most)")
        if self.events_kept < 1:
            raise ValueError("--events-kept must be at least 1 second")
        if self.node_timeout < 3:
            raise ValueError("--node-timeout must be at least 3 seconds (the heartbeat is every 2)")
        if not self.plain and not self.tls:
            raise ValueError("--no-plain leaves no way in: give --tls-cert and --tls-key too")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def page_budget(self) -> int:
        """Bytes a backlog or a /history page may take: a quarter of a send queue, so a page alone never
        overflows it."""
        return self.sendq // 4

    def is_exempt(self, ip: str) -> bool:
        """Whether connections from `ip` are free of the per-address limit (an IPv4-mapped address counts as the
        IPv4 address it is, so loopback stays exempt behind a dual-stack `::` listener)."""
        address = peer_address(ip)
        return address is not None and any(address in network for network in self.exempt_networks)


DEFAULTS = ServerConfig()  # what `chat serve` uses for an option not given
