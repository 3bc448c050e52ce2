"""The web door over TLS (`--https-port`): the page and its WebSocket (wss://) behind the TLS transport, on real
TLS sockets, with certificates from a throwaway CA (trustme). The same codec as the plain door: these tests check
what TLS changes (the handshake in front, the Origin rules of an https page) and that a chat still flows."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from websockets.frames import CloseCode

from harness import (
    WAIT,
    ServerThread,
    TLSFiles,
    chat_command,
    http_get,
    serve_process,
    untrusted_context,
)

Server = Callable[..., ServerThread]


def https(make_server: Server, files: TLSFiles, **overrides: Any) -> ServerThread:
    return make_server(https_port=0, tls_port=0, tls_cert=files.cert, tls_key=files.key, **overrides)


def test_the_page_is_served_over_https_with_its_headers(make_server: Server, tls_files: TLSFiles) -> None:
    server = https(make_server, tls_files)
    host, port = server.https_address
    page = http_get(host, port, "/", tls=tls_files.client_context())
    assert page.status == 200
    assert b'<script type="module" src="app.js"></script>' in page.body
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert http_get(host, port, "/app.js", tls=tls_files.client_context()).status == 200
    assert http_get(host, port, "/nothing", tls=tls_files.client_context()).status == 404


def test_a_wss_client_and_a_plain_client_chat_in_one_room(make_server: Server, tls_files: TLSFiles) -> None:
    server = https(make_server, tls_files)
    host, port = server.https_address
    alice = server.wss_client(tls_files.client_context(), origin=f"https://{host}:{port}")
    assert alice.response.status_code == 101
    assert isinstance(alice.sock, ssl.SSLSocket) and alice.sock.version() in ("TLSv1.2", "TLSv1.3")
    alice.register("alice")
    bob = server.client("bob")
    alice.send("hello over wss")
    assert bob.expect("alice: ") == "[#lobby] alice: hello over wss"
    bob.send("hi back")
    assert alice.expect_event("message", text="hi back")["nick"] == "bob"
    alice.close_handshake(1000, "bye now")
    assert alice.expect_closed() is not None
    assert bob.expect("alice quit") == "*** alice quit (bye now)"


def test_the_https_page_is_the_only_same_origin_of_the_tls_door(make_server: Server, tls_files: TLSFiles) -> None:
    server = https(make_server, tls_files, web_port=0, web_origins=("https://chat.example.com",))
    host, port = server.https_address
    context = tls_files.client_context()
    for origin, status in [(f"https://{host}:{port}", 101), ("https://chat.example.com", 101), (None, 101),
                           (f"http://{host}:{port}", 403),  # no http:// page comes from a port that speaks TLS
                           ("https://evil.example", 403), (f"https://{host}:{port + 1}", 403)]:
        client = server.wss_client(context, origin=origin)
        assert client.response.status_code == status, origin
        client.close()
    # the plain door keeps both schemes (https: a TLS proxy in front of it)
    plain_host, plain_port = server.web_address
    for scheme in ("http", "https"):
        client = server.web_client(origin=f"{scheme}://{plain_host}:{plain_port}")
        assert client.response.status_code == 101, scheme
        client.close()


def test_a_client_that_does_not_trust_the_certificate_gets_nothing(make_server: Server,
                                                                   tls_files: TLSFiles) -> None:
    server = https(make_server, tls_files)
    with pytest.raises(ssl.SSLCertVerificationError):
        server.wss_client(untrusted_context())
    bob = server.client("bob")  # the server is fine, and so is everyone else
    bob.send("/ping still-here")
    assert bob.expect("pong") == "*** pong still-here"


def test_plain_http_on_the_https_port_is_told_to_use_https(make_server: Server, tls_files: TLSFiles) -> None:
    server = https(make_server, tls_files)
    with socket.create_connection(server.https_address, timeout=WAIT) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.0 400 ") and b"use https://" in answer


def test_a_wss_message_over_the_cap_closes_1009(make_server: Server, tls_files: TLSFiles) -> None:
    server = https(make_server, tls_files, max_line=256)
    alice = server.wss_client(tls_files.client_context(), "alice")
    alice.send("x" * 300)
    assert alice.expect_event("error")["code"] == "line_too_long"
    close = alice.expect_closed()
    assert close is not None and close.code == CloseCode.MESSAGE_TOO_BIG


def test_serve_prints_the_https_address_and_refuses_it_without_a_certificate(sqlite_db: str,
                                                                             tls_files: TLSFiles) -> None:
    with serve_process(sqlite_db, *tls_files.serve_args(), "--https-port", "0") as proc:
        line = proc.proc.stdout.readline()  # type: ignore[union-attr]
        match = re.fullmatch(r"web client on https://127\.0\.0\.1:(\d+)/\n", line)
        assert match, line
        page = http_get("127.0.0.1", int(match.group(1)), "/", tls=tls_files.client_context())
        assert page.status == 200
        assert proc.terminate() == 0
    result = subprocess.run([*chat_command(), "serve", "--db", sqlite_db, "--port", "0", "--https-port", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--https-port needs a certificate" in result.stderr


def test_a_web_port_in_use_is_named_in_the_one_line_refusal(sqlite_db: str, tls_files: TLSFiles) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([*chat_command(), "serve", "--db", sqlite_db, "--port", "0", *tls_files.serve_args(),
                                 "--https-port", str(port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]  # after the log's line about the certificate it read
    assert last.startswith(f"chat serve: cannot listen on 127.0.0.1:0/0/{port}: the address is in use")
    assert last.endswith("try --port, --tls-port, --web-port or --https-port")
