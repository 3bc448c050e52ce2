"""Throwaway certificates for TLS tests: `trustme` makes a CA that exists only for the test, issues the server's
certificate for 127.0.0.1 and localhost, and gives clients a context that trusts that CA alone."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

IDENTITIES = ("127.0.0.1", "localhost")


@dataclass
class TLSFiles:
    """A CA, and the server certificate (chain) and key it issued, as PEM files under `directory`."""

    ca: trustme.CA
    directory: Path
    cert: str = ""  # the server's certificate then its chain (like certbot's fullchain.pem)
    key: str = ""
    ca_file: str = ""  # the CA's certificate: what a client is given with --ca
    serial = 0

    def __post_init__(self) -> None:
        self.ca_file = str(self.directory / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.cert = str(self.directory / "fullchain.pem")
        self.key = str(self.directory / "privkey.pem")
        self.issue()

    def issue(self, common_name: str | None = None) -> bytes:
        """Write a new certificate and key over the server's files (what a certbot renewal does); returns the
        certificate (DER), to compare with what a client is shown."""
        TLSFiles.serial += 1
        leaf = self.ca.issue_cert(*IDENTITIES, common_name=common_name or f"chat test {TLSFiles.serial}")
        leaf.private_key_pem.write_to_path(self.key)
        with open(self.cert, "wb") as f:
            for pem in leaf.cert_chain_pems:
                f.write(pem.bytes())
        return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())

    def serve_args(self) -> list[str]:
        """`chat serve` options for a TLS door on any free port with these files."""
        return ["--tls-port", "0", "--tls-cert", self.cert, "--tls-key", self.key]

    def spki_pin(self) -> str:
        """The base64 SHA-256 of the server certificate's public key: what chromium's
        --ignore-certificate-errors-spki-list takes to trust this one key (and no other certificate)."""
        with open(self.cert, "rb") as f:
            public_key = x509.load_pem_x509_certificate(f.read()).public_key()
        spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(hashlib.sha256(spki).digest()).decode()

    def client_context(self) -> ssl.SSLContext:
        """What `chat client --tls --ca ca.pem` builds: the system's defaults, trusting this CA."""
        return ssl.create_default_context(cafile=self.ca_file)


def make_tls_files(directory: Path) -> TLSFiles:
    directory.mkdir(parents=True, exist_ok=True)
    return TLSFiles(trustme.CA(), directory)


def untrusted_context() -> ssl.SSLContext:
    """A client context that trusts a CA of its own, not the server's: the server must be refused."""
    return ssl.create_default_context(cadata=trustme.CA().cert_pem.bytes().decode())


def client_hello(context: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> bytes:
    """The first flight of a real TLS client (its ClientHello), to send whole, in part, or a byte at a time."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = (context or ssl.create_default_context()).wrap_bio(incoming, outgoing, server_hostname=host)
    with contextlib.suppress(ssl.SSLWantReadError):  # it waits for the server's answer
        tls.do_handshake()
    return outgoing.read()


class RecordClient:
    """A TLS client that decides what goes into each TCP write: several TLS records (a line and a close_notify,
    say) can reach the server in one segment, which an SSLSocket never arranges on purpose."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, host: str = "127.0.0.1") -> None:
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=host)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outgoing.read())
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed during the handshake") from None
                self.incoming.write(data)
        self.sock.sendall(self.outgoing.read())

    def encrypt(self, data: bytes) -> bytes:
        """The records carrying `data`, not sent."""
        self.tls.write(data)
        return self.outgoing.read()

    def close_notify(self) -> bytes:
        """The close_notify record, not sent."""
        with contextlib.suppress(ssl.SSLWantReadError):  # it would wait for the server's
            self.tls.unwrap()
        return self.outgoing.read()

    def read_until_close_notify(self, timeout: float) -> bytes:
        """Everything the server sends until its close_notify (ssl.SSLZeroReturnError) or its TCP EOF
        (ssl.SSLEOFError: no close_notify came)."""
        received = b""
        self.sock.settimeout(timeout)
        while True:
            data = self.sock.recv(65536)
            if not data:
                self.incoming.write_eof()
            else:
                self.incoming.write(data)
            while True:
                try:
                    received += self.tls.read(65536)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    return received
