"""The web door without a browser: HTTP answers, the WebSocket handshake and its refusals, frames and their
limits, the closing handshake, slow readers. Real sockets on 127.0.0.1; a WebSocket client built on websockets'
sans-I/O ClientProtocol (harness.web), so a test decides every byte it sends and when it reads."""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
from collections.abc import Callable

import pytest
from websockets.frames import CloseCode, Frame, Opcode

from harness import (
    WAIT,
    ServerThread,
    WebSocketClient,
    capture_logs,
    chat_command,
    http_get,
    http_request,
    serve_process,
)
from harness.web import parse_answer

Server = Callable[..., ServerThread]


def web(make_server: Server, **overrides: object) -> ServerThread:
    return make_server(web_port=0, **overrides)


# ------------------------------------------------------------------------------------------------ HTTP


def test_the_page_is_served_with_headers_that_forbid_inline_script(make_server: Server) -> None:
    server = web(make_server)
    host, port = server.web_address
    page = http_get(host, port, "/")
    assert page.status == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert b'<script type="module" src="app.js"></script>' in page.body
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["connection"] == "close"
    assert int(page.headers["content-length"]) == len(page.body)
    # every file the page names is there, with its type
    names = re.findall(rb'(?:src|href)="([^"]+)"', page.body)
    assert {b"app.js", b"style.css", b"favicon.svg"} <= set(names)
    types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
    for name in names:
        answer = http_get(host, port, "/" + name.decode())
        assert answer.status == 200, name
        assert answer.headers["content-type"] == types[os.path.splitext(name.decode())[1]]
        assert answer.headers["content-security-policy"] == csp


def test_every_module_the_page_imports_is_served(make_server: Server) -> None:
    server = web(make_server)
    host, port = server.web_address
    wanted, seen = ["app.js"], set()
    while wanted:
        name = wanted.pop()
        seen.add(name)
        answer = http_get(host, port, "/" + name)
        assert answer.status == 200, f"{name} is imported but not served"
        for imported in re.findall(rb'from "\./([^"]+)"', answer.body):
            if imported.decode() not in seen:
                wanted.append(imported.decode())
    assert {"app.js", "connection.js", "conversation.js", "text.js", "input.js", "notify.js"} <= seen


def test_head_revalidation_and_query_strings(make_server: Server) -> None:
    server = web(make_server)
    host, port = server.web_address
    full = http_get(host, port, "/app.js")
    head = http_get(host, port, "/app.js", method="HEAD")
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == str(len(full.body))
    etag = full.headers["etag"]
    again = http_get(host, port, "/app.js", headers={"If-None-Match": etag})
    assert again.status == 304 and again.body == b"" and again.headers["etag"] == etag
    assert http_get(host, port, "/?from=bookmark").body == http_get(host, port, "/index.html").body


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    (b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 405),
    (b"DELETE /app.js HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    (b"POST /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    (b"complete nonsense\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nno colon in this header\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
])
def test_other_requests_get_the_right_status(make_server: Server, request_bytes: bytes, status: int) -> None:
    server = web(make_server)
    answer = http_request(*server.web_address, request_bytes)
    assert answer.status == status, answer.raw[:200]
    assert "content-security-policy" in answer.headers
    if status == 405:
        assert answer.headers["allow"] == "GET, HEAD"


def test_the_websocket_path_answers_what_a_websocket_needs(make_server: Server) -> None:
    server = web(make_server)
    host, port = server.web_address
    plain = http_get(host, port, "/ws")  # a browser tab opened on it: no upgrade
    assert plain.status == 426 and plain.headers["upgrade"] == "websocket"
    post = http_request(host, port, b"POST /ws HTTP/1.1\r\nHost: x\r\n\r\n")
    assert post.status == 405 and post.headers["allow"] == "GET"
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
    no_key = http_get(host, port, "/ws", headers=upgrade)
    assert no_key.status == 400 and b"Sec-WebSocket-Key" in no_key.body
    bad_key = http_get(host, port, "/ws", headers={**upgrade, "Sec-WebSocket-Key": "not base64!"})
    assert bad_key.status == 400
    old_version = http_get(host, port, "/ws", headers={
        **upgrade, "Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()})
    assert old_version.status == 400


def test_a_connection_that_never_sends_a_request_is_answered_408(make_server: Server) -> None:
    server = web(make_server, nick_timeout=1.0)
    with socket.create_connection(server.web_address, timeout=WAIT) as sock:
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert parse_answer(data).status == 408


def test_connections_per_address_are_refused_with_429(make_server: Server) -> None:
    server = web(make_server, max_per_ip=1, exempt=())
    first = server.web_client("first")
    answer = http_get(*server.web_address, "/")
    assert answer.status == 429 and b"Too many connections" in answer.body
    first.sync()


# ------------------------------------------------------------------------------------------- handshake


def test_handshake_then_json_events_one_per_frame(make_server: Server) -> None:
    server = web(make_server)
    ws = server.web_client()
    assert ws.response.status_code == 101
    hello = ws.expect_event("hello")
    assert hello["max_line"] == server.config.max_line
    ws.send("alice")
    assert ws.expect_event("welcome")["nick"] == "alice"
    assert ws.expect_event("joined")["room"] == "lobby"
    assert all(frame.fin for frame in ws.frames)  # whole messages, never fragments


@pytest.mark.parametrize(("origin", "extra", "accepted"), [
    (None, (), True),  # not a browser: a script or a bot
    ("SAME", (), True),
    ("https://evil.example", (), False),
    ("http://127.0.0.1:1", (), False),  # the same host on another port is another origin
    ("https://chat.example.com", ("https://chat.example.com",), True),
    ("https://evil.example", ("*",), True),
])
def test_the_origin_decides_who_may_open_a_websocket(make_server: Server, origin: str | None,
                                                      extra: tuple[str, ...], accepted: bool) -> None:
    server = web(make_server, web_origins=extra)
    host, port = server.web_address
    shown = f"http://{host}:{port}" if origin == "SAME" else origin
    ws = WebSocketClient(host, port, origin=shown)
    if accepted:
        assert ws.response.status_code == 101
        ws.register("alice")
    else:
        assert ws.response.status_code == 403
        assert b"origin" in bytes(ws.response.body).lower()
        assert server.inspect(lambda loop: not loop.state.nicks)


def test_a_websocket_user_and_a_native_user_talk(make_server: Server) -> None:
    server = web(make_server, backlog=5)
    bob = server.client("bob")
    for i in range(8):
        bob.send(f"old {i}")
    bob.sync()
    alice = server.web_client("alice")
    backlog = alice.events_until("history_end")
    assert [e["text"] for e in backlog if e["type"] == "message"] == [f"old {i}" for i in range(3, 8)]
    assert backlog[-1]["more"] is True
    alice.send("hello bob", "/me waves")
    assert bob.expect("alice: ") == "[#lobby] alice: hello bob"
    assert bob.expect("* alice") == "[#lobby] * alice waves"
    assert alice.expect_event("message", nick="alice")["text"] == "hello bob"  # its own, stored
    bob.send("hi alice", "/msg alice psst")
    assert alice.expect_event("message", nick="bob")["text"] == "hi alice"
    assert alice.expect_event("private")["text"] == "psst"
    oldest = backlog[0]["id"]
    alice.send(f"/history #lobby 10 before {oldest}")
    page = alice.events_until("history_end")
    assert [e["text"] for e in page[:-1]] == [f"old {i}" for i in range(3)]
    assert page[-1] == {"type": "history_end", "room": "lobby", "count": 3, "more": False, "reason": "page"}


def test_a_message_of_several_lines_is_several_lines_and_fragments_make_one_message(make_server: Server) -> None:
    server = web(make_server)
    bob = server.client("bob")
    alice = server.web_client("alice")
    alice.send_text("one\r\ntwo\n\nthree\n")
    alice.send_fragments(b"fra", "gmen\u00e9".encode()[:-1], "é".encode()[-1:] + b"ted")
    for text in ("one", "two", "three", "fragmenéted"):
        assert bob.expect("alice: ") == f"[#lobby] alice: {text}"


def test_the_output_format_is_always_json(make_server: Server) -> None:
    server = web(make_server)
    alice = server.web_client("alice")
    alice.send("/format text")
    error = alice.expect_event("error")
    assert error["code"] == "bad_argument" and error["command"] == "format"
    alice.sync()  # still JSON
    alice.send("/format json")
    alice.expect_event("format", format="json")


def test_a_ping_is_answered_with_a_pong(make_server: Server) -> None:
    server = web(make_server)
    alice = server.web_client("alice")
    alice.ping(b"are you there")
    alice.sync()
    pongs = [f for f in alice.frames if f.opcode.name == "PONG"]
    assert [bytes(f.data) for f in pongs] == [b"are you there"]


# ------------------------------------------------------------------------------------- limits, closing


def test_a_message_longer_than_max_line_is_refused_with_1009(make_server: Server) -> None:
    server = web(make_server, max_line=1024)
    bob = server.client("bob")
    alice = server.web_client("alice")
    alice.send("x" * 1024)  # exactly the limit: fine
    assert bob.expect("alice: ") == "[#lobby] alice: " + "x" * 1024
    alice.send("y" * 1025)
    error = alice.expect_event("error")
    assert error["code"] == "line_too_long"
    close = alice.expect_closed()
    assert close is not None and close.code == CloseCode.MESSAGE_TOO_BIG
    assert bob.expect("quit") == "*** alice quit (message too long)"
    bob.sync()


def test_an_announced_huge_message_is_refused_before_its_payload(make_server: Server) -> None:
    server = web(make_server, max_line=1024)
    alice = server.web_client("alice")
    # a header announcing a 1 GiB text frame, then nothing: the server must not wait for (or buffer) it
    alice.send_raw(bytes([0x81, 0xFF]) + (1 << 30).to_bytes(8, "big") + os.urandom(4))
    close = alice.expect_closed()
    assert close is not None and close.code == CloseCode.MESSAGE_TOO_BIG


@pytest.mark.parametrize(("send", "code"), [
    (lambda ws: ws.send_binary(b"\x00\x01"), CloseCode.UNSUPPORTED_DATA),
    (lambda ws: ws.send_raw(bytes([0x81, 0x82]) + b"\0\0\0\0" + b"\xc3\x28"), CloseCode.INVALID_DATA),
    (lambda ws: ws.send_raw(bytes([0x81, 0x02]) + b"hi"), CloseCode.PROTOCOL_ERROR),  # not masked
    (lambda ws: ws.send_raw(bytes([0x83, 0x80]) + b"\0\0\0\0"), CloseCode.PROTOCOL_ERROR),  # no such opcode
])
def test_bad_frames_close_with_the_rfc_6455_code(make_server: Server, send: Callable[[WebSocketClient], None],
                                                 code: int) -> None:
    server = web(make_server)
    bob = server.client("bob")
    alice = server.web_client("alice")
    send(alice)
    close = alice.expect_closed()
    assert close is not None and close.code == code
    bob.expect("*** alice quit")
    bob.send("still here")
    bob.expect("bob: still here")


def test_the_client_closing_is_echoed_and_the_room_told(make_server: Server) -> None:
    server = web(make_server)
    bob = server.client("bob")
    alice = server.web_client("alice")
    alice.send("last words")
    alice.close_handshake(CloseCode.GOING_AWAY, "tab closed")
    close = alice.expect_closed()
    assert close is not None and close.code == CloseCode.GOING_AWAY  # the echo
    assert bob.expect("alice: ") == "[#lobby] alice: last words"
    assert bob.expect("quit") == "*** alice quit (tab closed)"


def test_quit_and_shutdown_close_with_their_codes(make_server: Server) -> None:
    server = web(make_server)
    alice = server.web_client("alice")
    alice.send("/quit")
    assert alice.expect_event("bye")["code"] is None
    close = alice.expect_closed()
    assert close is not None and close.code == CloseCode.NORMAL_CLOSURE
    bob = server.web_client("bob")
    server.stop()
    assert bob.expect_event("bye")["code"] == "server_shutdown"
    close = bob.expect_closed()
    assert close is not None and close.code == CloseCode.GOING_AWAY


def test_a_websocket_without_a_nickname_is_closed_in_time(make_server: Server) -> None:
    server = web(make_server, nick_timeout=1.0)
    ws = server.web_client()
    assert ws.expect_event("bye")["code"] == "registration_timeout"
    close = ws.expect_closed()
    assert close is not None and close.code == CloseCode.POLICY_VIOLATION


def test_a_websocket_client_that_never_reads_is_dropped_with_whole_frames(make_server: Server) -> None:
    server = web(make_server, sendq=64 * 1024)
    stalled = WebSocketClient(*server.web_address, receive_buffer=4096)
    stalled.register("stalled")  # then it reads nothing more, for a while
    bob = server.client("bob")
    reader = server.web_client("reader")
    text = "z" * 1000
    with capture_logs() as logs:
        for i in range(0, 3000, 100):
            bob.send(*[f"{j} {text}" for j in range(i, i + 100)])
            for j in range(i, i + 100):  # the room keeps flowing, in order, to those who read
                reader.expect_event("message", text=f"{j} {text}")
            if server.inspect(lambda loop: "stalled" not in loop.state.nicks):
                break  # its queue overflowed: it is being told goodbye
        assert bob.expect("quit") == "*** stalled quit (send queue exceeded)"
        # reading now (within the linger), it gets whole frames: a prefix of the room, a bye, the close
        close = stalled.expect_closed()
        assert close is not None and close.code == CloseCode.POLICY_VIOLATION
        assert stalled.seen[-1]["type"] == "bye" and stalled.seen[-1]["code"] == "sendq_exceeded"
        said = [e["text"] for e in stalled.seen if e["type"] == "message"]
        assert said == [f"{j} {text}" for j in range(len(said))]
        assert stalled.protocol.parser_exc is None  # no frame cut in half
        logs.expect("disconnect", "stalled@", "reason=send queue exceeded")


def test_serve_prints_where_the_web_client_is(sqlite_db: str) -> None:
    with serve_process(sqlite_db, "--web-port", "0") as proc:
        line = proc.proc.stdout.readline()  # type: ignore[union-attr]
        match = re.fullmatch(r"web client on http://127\.0\.0\.1:(\d+)/\n", line)
        assert match, line
        page = http_get("127.0.0.1", int(match.group(1)), "/")
        assert page.status == 200
        assert proc.terminate() == 0


def test_a_bad_web_origin_is_refused_at_start(sqlite_db: str) -> None:
    result = subprocess.run([*chat_command(), "serve", "--db", sqlite_db, "--port", "0", "--web-port", "0",
                             "--web-origin", "chat.example.com"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "is not an origin" in result.stderr


def test_frames_sent_before_the_101_are_handled_after_it(make_server: Server) -> None:
    server = web(make_server)
    host, port = server.web_address
    key = base64.b64encode(os.urandom(16)).decode()
    upgrade = (f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    nick = Frame(Opcode.TEXT, b"eager").serialize(mask=True, extensions=())  # RFC 6455: it should have waited
    with socket.create_connection((host, port), timeout=WAIT) as sock:
        sock.sendall(upgrade + nick)
        data = b""
        while b'"type":"joined"' not in data:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    assert data.startswith(b"HTTP/1.1 101 ")
    assert data.index(b'"type":"hello"') < data.index(b'"type":"welcome"') < data.index(b'"type":"joined"')


def test_a_websocket_flood_is_slowed_then_ended_like_any_clients(make_server: Server) -> None:
    server = web(make_server, rate=5.0, burst=5, flood_limit=20)
    bob = server.client("bob")
    flooder = server.web_client("flooder")
    flooder.send(*[f"spam {i}" for i in range(200)])  # far past the burst and the limit, all at once
    bye = flooder.expect_event("bye")
    assert bye["code"] == "flood"
    close = flooder.expect_closed()
    assert close is not None and close.code == CloseCode.POLICY_VIOLATION
    said = [line for line in bob.lines_until("flooder quit") if line.startswith("[#lobby] flooder: ")]
    assert said == [f"[#lobby] flooder: spam {i}" for i in range(len(said))]  # what was taken, in order
    assert 1 <= len(said) < 200  # the burst, less the request and the nick it also counted
