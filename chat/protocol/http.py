"""HTTP for the web door: the page's static files, refusals, and the headers every response carries. Pure.

Responses are websockets' `Response` objects serialised to bytes (the same HTTP/1.1 code that writes the
WebSocket handshake). The door answers one request per connection and closes it (`Connection: close`): a page
load is a handful of small files, and the WebSocket that follows is one long connection.
"""

from __future__ import annotations

import email.utils
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus

from websockets.datastructures import Headers, MultipleValuesError
from websockets.http11 import Response
from websockets.typing import Origin

from chat.protocol.errors import ErrorCode

# The page is plain files from this server: no inline script or style, nothing from elsewhere, no framing.
# `connect-src 'self'` covers the WebSocket to the same host and port (ws: and wss: alike, CSP level 3).
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
    "manifest-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
))
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),  # a file is what its Content-Type says, never sniffed as script
    ("Referrer-Policy", "no-referrer"),  # a link clicked in a message does not tell the other site where from
    ("X-Frame-Options", "DENY"),  # frame-ancestors, for browsers that predate it
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
)
ALLOWED_METHODS = "GET, HEAD"
TEXT_PLAIN = "text/plain; charset=utf-8"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": TEXT_PLAIN,
}


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str  # a strong validator: the page revalidates each load (Cache-Control: no-cache) and gets a 304

    @classmethod
    def of(cls, name: str, body: bytes) -> StaticFile:
        suffix = name[name.rfind("."):] if "." in name else ""
        etag = '"' + hashlib.sha256(body).hexdigest()[:24] + '"'
        return cls(body, CONTENT_TYPES.get(suffix, "application/octet-stream"), etag)


Site = Mapping[str, StaticFile]  # request path ("/", "/app.js") -> file


def respond(status: int, body: bytes = b"", content_type: str = TEXT_PLAIN,
            headers: Iterable[tuple[str, str]] = (), head: bool = False) -> bytes:
    """A whole response: status, the security headers, `headers`, and the body (none for HEAD, 204 or 304)."""
    fields = Headers([("Date", email.utils.formatdate(usegmt=True)), ("Connection", "close"), *SECURITY_HEADERS])
    if status != HTTPStatus.NOT_MODIFIED:
        fields["Content-Type"] = content_type
        fields["Content-Length"] = str(len(body))
    for name, value in headers:
        fields[name] = value
    shown = b"" if head or status == HTTPStatus.NOT_MODIFIED else body
    return Response(status, HTTPStatus(status).phrase, fields, shown).serialize()


def refusal(status: int, message: str, headers: Iterable[tuple[str, str]] = (), head: bool = False) -> bytes:
    return respond(status, (message + "\n").encode(), TEXT_PLAIN, headers, head)


def serve_file(file: StaticFile, request_headers: Headers, head: bool) -> bytes:
    """200 with the file, or 304 when the browser's copy (If-None-Match) is current."""
    validators = {"Cache-Control": "no-cache", "ETag": file.etag}.items()
    if file.etag in header(request_headers, "If-None-Match", "").replace("W/", "").split(", "):
        return respond(HTTPStatus.NOT_MODIFIED, headers=validators)
    return respond(HTTPStatus.OK, file.body, file.content_type, validators, head)


def header(headers: Headers, name: str, default: str = "") -> str:
    """One header's value; a header sent several times counts as absent (a client we cannot trust with it)."""
    try:
        return headers.get(name, default)
    except MultipleValuesError:
        return default


def status_for_bye(code: ErrorCode | None) -> HTTPStatus:
    """The status that says why a connection is closed before it became a WebSocket (it sent no request in time,
    the server is full or stopping, its address has too many connections)."""
    match code:
        case ErrorCode.REGISTRATION_TIMEOUT:
            return HTTPStatus.REQUEST_TIMEOUT
        case ErrorCode.TOO_MANY_CONNECTIONS | ErrorCode.FLOOD:
            return HTTPStatus.TOO_MANY_REQUESTS
    return HTTPStatus.SERVICE_UNAVAILABLE


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """Which pages may open a WebSocket here, so that a page on another site cannot drive a visitor's session.

    By default only the server's own page: an `Origin` whose host (and port) is the request's `Host`, with one of
    `schemes`: http or https on the plain door (https when a TLS proxy is in front), https alone on the TLS door
    (no http:// page can come from a port that speaks TLS only). `allowed` adds exact origins
    (`https://chat.example.com`), or `*` for any. A request without `Origin` is not from a browser page (a script,
    a bot) and is let in: Origin protects browser users, and a program could send any Origin it likes anyway."""

    allowed: tuple[str, ...] = ()  # checked by ServerConfig (--web-origin)
    schemes: tuple[str, ...] = ("http", "https")

    def origins_for(self, host: str) -> list[Origin | None] | None:
        """websockets' `origins` list for a request to `host` (None: any origin)."""
        if "*" in self.allowed:
            return None
        same = [f"{scheme}://{host.lower()}" for scheme in self.schemes] if host else []
        return [None, *(Origin(o) for o in same), *(Origin(o.lower()) for o in self.allowed)]
