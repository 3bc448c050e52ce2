"""TLS for any front door: a server certificate that SIGHUP can replace, and a transport that speaks TLS on a
non-blocking socket without ever blocking the event loop.

The transport is sans-I/O TLS: an `ssl.SSLObject` between two `ssl.MemoryBIO`s, the loop's socket on the other
side. Every read drains the socket's bytes into the TLS object and everything it can decrypt out of it, so no
plaintext is ever left waiting inside OpenSSL (its `pending()`) where a level-triggered epoll would not see it;
every write encrypts a whole slice and keeps what the socket did not take as the transport's own pending bytes,
one slice at most (the loop stops handing it more until they are out, so --sendq still bounds a slow reader).
Before the handshake is done there is nothing to encrypt with: what the server says first (the greeting) waits
in plaintext and goes out right after it.

Why not `SSLSocket` in non-blocking mode: a write it cannot finish must be retried with the same bytes, while the
loop joins its queue afresh for every send; and its reads leave decrypted bytes in `pending()`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import socket
import ssl
from pathlib import Path

from chat.server.transport import RECV_SIZE, TransportError

log = logging.getLogger("chat.server")

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
EARLY_MAX = 1 << 16  # bytes the server may say before the handshake is done (its greeting is a few hundred)

# What the handshake errors people will meet mean, in the log's words (OpenSSL's reason codes).
_HANDSHAKE_REASONS = {
    "HTTP_REQUEST": "plain HTTP on a TLS port",
    "HTTPS_PROXY_REQUEST": "an HTTP proxy request on a TLS port",
    "WRONG_VERSION_NUMBER": "not TLS (plain text or garbage on a TLS port)",
    "UNKNOWN_PROTOCOL": "not TLS (plain text or garbage on a TLS port)",
    "UNSUPPORTED_PROTOCOL": f"the client's TLS version is older than {MINIMUM_VERSION.name}",
    "NO_SHARED_CIPHER": "no cipher in common with the client",
    "NO_SUITABLE_SIGNATURE_ALGORITHM": "no signature algorithm in common with the client",
}


# Said in plain text to a peer that is not speaking TLS at all (someone with nc, a browser on http://), so they
# learn why they were closed; anything else gets TLS's own alert.
_NOT_TLS = {"HTTP_REQUEST", "HTTPS_PROXY_REQUEST", "WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL"}
NOT_TLS_NOTICE = b"This port speaks TLS only: connect with TLS (chat client --tls, or your client's TLS option).\r\n"
NOT_TLS_HTTP = (b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
                b"This port speaks TLS only: use https://.\n")


class TLSSetupError(Exception):
    """A certificate or key that cannot be used; the message says which file and why, in one line."""


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context the modern way: Python's defaults for a server (its cipher list, no compression, a fresh
    ECDH key per handshake), TLS 1.2 at least, renegotiation refused (TLS 1.3 has none; in 1.2 it is a way to
    make the server work for nothing), and the certificate chain with its key. Raises TLSSetupError."""
    for path, what in ((cert_file, "certificate"), (key_file, "key")):
        try:
            with open(path, "rb"):
                pass
        except OSError as e:
            raise TLSSetupError(f"cannot read the TLS {what} {path}: {e.strerror or e}") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = MINIMUM_VERSION
    context.options |= ssl.OP_NO_RENEGOTIATION  # OpenSSL 3 refuses a client's anyway; 1.1.1 did not

    def no_passphrase() -> str:  # never ask on the terminal: a server has nobody there
        raise TLSSetupError(f"the TLS key {key_file} is encrypted; give the server an unencrypted key "
                            "(readable by the server's user only)")

    try:
        context.load_cert_chain(cert_file, key_file, password=no_passphrase)
    except ssl.SSLError as e:
        raise TLSSetupError(_describe_load_error(e, cert_file, key_file)) from None
    return context


def _describe_load_error(e: ssl.SSLError, cert_file: str, key_file: str) -> str:
    reason = e.reason or ""
    if reason == "KEY_VALUES_MISMATCH":
        return f"the TLS key {key_file} does not belong to the certificate {cert_file}"
    if "CA_MD_TOO_WEAK" in reason or "EE_KEY_TOO_SMALL" in reason:
        return f"the TLS certificate {cert_file} is too weak for OpenSSL's security level ({reason.lower()})"
    if b"-----BEGIN CERTIFICATE-----" not in Path(cert_file).read_bytes():
        return f"{cert_file} is not a PEM certificate (no '-----BEGIN CERTIFICATE-----' line)"
    if not re.search(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----", Path(key_file).read_bytes()):
        return f"{key_file} is not a PEM private key (no '-----BEGIN ... PRIVATE KEY-----' line)"
    return f"the TLS certificate {cert_file} or key {key_file} cannot be used: {reason or e}"


def fingerprint(cert_file: str) -> str:
    """SHA-256 of the first certificate in a PEM file (the server's own), as `openssl x509 -fingerprint` shows
    it: the log says which certificate is being served, so an operator can check a reload took."""
    text = Path(cert_file).read_text("ascii", "replace")
    match = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.DOTALL)
    if match is None:
        return "?"
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(match.group(0))).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


class ServerTLS:
    """The certificate every TLS door serves, and the transport factory any door takes for its TLS twin:
    `loop.add_door(name, host, port, codec, server_tls)` (calling it on an accepted socket makes that socket's
    TLSTransport). `reload()` builds a new context from the same files: connections accepted after it get the
    new certificate; those before keep theirs (each TLS object holds its own context). It runs on the loop
    thread (SIGHUP only asks for it)."""

    secure = True  # what it makes is TLS (Door.secure)

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.context = server_context(cert_file, key_file)  # raises TLSSetupError: the server does not start
        self.fingerprint = fingerprint(cert_file)
        log.info("TLS certificate %s (sha256 %s)", cert_file, self.fingerprint,
                 extra={"event": "tls_certificate", "fingerprint": self.fingerprint})

    def __call__(self, sock: socket.socket) -> TLSTransport:
        return TLSTransport(sock, self.context)

    def reload(self) -> bool:
        """Read the certificate and key again; on any problem keep serving the current ones and log why."""
        try:
            context = server_context(self.cert_file, self.key_file)
            new_fingerprint = fingerprint(self.cert_file)
        except (TLSSetupError, OSError, ValueError) as e:
            log.error("TLS reload failed, still serving the previous certificate: %s", e,
                      extra={"event": "tls_reload_failed", "reason": str(e)})
            return False
        self.context = context
        changed = new_fingerprint != self.fingerprint
        self.fingerprint = new_fingerprint
        log.info("TLS certificate reloaded from %s (sha256 %s%s)", self.cert_file, new_fingerprint,
                 "" if changed else ", unchanged", extra={"event": "tls_reloaded", "fingerprint": new_fingerprint})
        return True


class TLSTransport:
    """TLS over one accepted socket (see the module's docstring). Same interface as SocketTransport."""

    __slots__ = ("_early", "_encrypt_into_bio", "_ended", "_incoming", "_outgoing", "_pending", "_send_records",
                 "_take_records", "_tls", "established", "failed", "fd", "pending_output", "sock")

    secure = True

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.established = False  # the handshake is done
        self.failed = False  # a TLS error ended it: no close_notify after that
        self._early = bytearray()  # plaintext the server said before the handshake was done
        self._pending: bytes | memoryview = b""  # encrypted bytes the socket has not taken yet
        self.pending_output = False  # bool(self._pending), kept as a plain attribute: the loop asks after every flush
        # the three calls of every write, bound once (a W4 message is 99 writes)
        self._encrypt_into_bio = self._tls.write
        self._take_records = self._outgoing.read
        self._send_records = sock.send
        self._ended = False  # the peer's input is over (close_notify, or EOF after the handshake)

    # ------------------------------------------------------------------------------------------ reading

    def recv(self) -> bytes | None:
        if self._ended:
            return b""
        data = self.sock.recv(RECV_SIZE)  # BlockingIOError, OSError: the loop's business
        if data:
            self._incoming.write(data)
        elif not self.established:
            raise TransportError("dropped during the TLS handshake")
        else:
            self._incoming.write_eof()
        if not self.established and not self._handshake():
            return None
        return self._decrypt()

    def _handshake(self) -> bool:
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._push()
            return False
        except ssl.SSLError as e:
            self.failed = True
            if e.reason in _NOT_TLS:  # it would not understand an alert: say why in its terms
                self._pending = NOT_TLS_HTTP if e.reason.startswith("HTTP") else NOT_TLS_NOTICE
                self._outgoing.read()
            self._push()  # the alert (or notice) saying why, if the socket takes it at once
            raise TransportError(handshake_failure(e)) from None
        self.established = True
        if self._early:
            early, self._early = bytes(self._early), bytearray()
            self._encrypt(early)
        self._push()
        return True

    def _decrypt(self) -> bytes | None:
        """Everything the TLS object can decrypt now (nothing stays in its pending()); b"" at the end of input:
        the peer's close_notify, or its TCP FIN with or without one (a line protocol frames its own messages, so
        a missing close_notify cannot cut a message short unnoticed)."""
        tls = self._tls
        incoming = self._incoming
        chunks = []
        end = False
        while True:
            try:
                chunk = tls.read(RECV_SIZE)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                end = True
                break
            except ssl.SSLError as e:
                self.failed = True
                raise TransportError(f"TLS error: {_reason_words(e)}") from None
            if not chunk:
                end = True
                break
            chunks.append(chunk)
            if not incoming.pending and not incoming.eof and not tls.pending():
                break  # all of it is decrypted: asking again would only raise SSLWantReadError (3 µs, every read)
        if self._outgoing.pending:  # the peer's records may need an answer (a TLS 1.3 key update)
            self._push()
        if end:
            self._ended = True
        if chunks:
            return b"".join(chunks)
        return b"" if end else None

    @property
    def at_end(self) -> bool:
        """The peer's input ended right after the data recv() returned: no socket event may come to say so (a
        close_notify without a TCP FIN), so the loop asks after each read."""
        return self._ended

    # ------------------------------------------------------------------------------------------ writing

    def send(self, data: bytes | memoryview) -> int:
        if self._pending or not self.established:
            return self._send_slowly(data)
        # the hot path, once per recipient of every message: encrypt it all (a memory BIO takes any amount: the
        # write is whole), give the socket what it takes, keep the rest as this transport's own
        if self._encrypt_into_bio(data) != len(data):
            raise TransportError("TLS write was cut short")  # cannot happen: partial writes are not enabled
        records = self._take_records()
        try:
            sent = self._send_records(records)
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent != len(records):
            self._pending = memoryview(records)[sent:]
            self.pending_output = True
        return len(data)

    def _send_slowly(self, data: bytes | memoryview) -> int:
        """Before the handshake is done (keep it as plaintext), or with records still waiting for the socket."""
        if not self.established:
            if len(self._early) + len(data) > EARLY_MAX:  # cannot happen (only a greeting is said so early)
                raise TransportError("too much output before the TLS handshake was done")
            self._early += data
            return len(data)
        self._push()
        if self._pending:
            raise BlockingIOError("TLS records still waiting for the socket")
        return self.send(data)

    def _encrypt(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            written = self._tls.write(view)
            view = view[written:]

    def _push(self) -> None:
        """Move encrypted bytes to the socket, as many as it takes now."""
        outgoing = self._outgoing
        if outgoing.pending:
            fresh = outgoing.read()
            self._pending = bytes(self._pending) + fresh if self._pending else fresh
        pending = self._pending
        if pending:
            try:
                sent = self.sock.send(pending)
            except (BlockingIOError, InterruptedError):
                sent = 0
            if sent == len(pending):
                self._pending = b""
            elif sent:
                self._pending = memoryview(pending)[sent:]
        self.pending_output = bool(self._pending)  # _push() always empties the outgoing BIO

    def flush_pending(self) -> None:
        self._push()

    # ------------------------------------------------------------------------------------------ the end

    @property
    def version(self) -> str:
        """What the handshake agreed on, for the log: "TLSv1.3 TLS_AES_256_GCM_SHA384"."""
        cipher = self._tls.cipher()
        return f"{self._tls.version()} {cipher[0] if cipher else '?'}"

    def close(self) -> None:
        """Say close_notify (when the socket takes it at once), then close the socket."""
        if self.established and not self.failed:
            with contextlib.suppress(OSError):  # SSLWantReadError: the peer's close_notify, not awaited
                self._tls.unwrap()
            with contextlib.suppress(OSError):
                self._push()
        self.sock.close()


def handshake_failure(e: ssl.SSLError) -> str:
    """Why a TLS handshake failed, in the log's words."""
    words = _HANDSHAKE_REASONS.get(e.reason or "")
    if words is None and (e.reason or "").startswith(("SSLV3_ALERT_", "TLSV1_ALERT_")):
        words = f"the client refused it ({_reason_words(e)})"  # it did not trust our certificate, say
    return f"TLS handshake failed: {words or _reason_words(e)}"


def _reason_words(e: ssl.SSLError) -> str:
    reason = e.reason or e.strerror or str(e)
    return reason.lower().replace("_", " ")
