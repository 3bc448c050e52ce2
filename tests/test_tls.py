"""TLS end to end: real handshakes on real sockets, certificates from a throwaway CA (trustme), `chat serve` and
`chat client` as real processes where signals or exit statuses are the point."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from chat.client.connection import tls_context
from chat.client.core import ClientCore
from chat.client.session import ClientSession, ReconnectPolicy
from harness import (
    WAIT,
    LineClient,
    RecordClient,
    ServerThread,
    TLSFiles,
    capture_logs,
    chat_command,
    client_hello,
    log_problems,
    make_tls_files,
    serve_process,
    untrusted_context,
    wait_for,
)

TLS = {"tls_port": 0}


def tls_server(make_server: Callable[..., ServerThread], files: TLSFiles, **overrides: Any) -> ServerThread:
    return make_server(tls_cert=files.cert, tls_key=files.key, **{**TLS, **overrides})


def connections(server: ServerThread) -> int:
    return int(server.loop.call_soon(lambda: len(server.loop.connections)).result(WAIT))


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Read (and drop) whatever comes until the server closes the connection; False if it is still open at
    the deadline."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
    return False


# ---------------------------------------------------------------------------------------------- chatting


def test_a_tls_client_and_a_plain_client_in_one_room_see_each_other(make_server: Any, tls_files: TLSFiles) -> None:
    server = tls_server(make_server, tls_files)
    with capture_logs() as logs:
        alice = server.tls_client(tls_files.client_context(), "alice", json_mode=True)
        bob = server.client("bob", json_mode=True)
        alice.send("over TLS")
        assert bob.expect_event("message", text="over TLS")["nick"] == "alice"
        bob.send("in clear")
        assert alice.expect_event("message", text="in clear")["nick"] == "bob"
        alice.send("/join dev")
        alice.expect_event("joined", room="dev")
        bob.send("/join dev", "/who dev")
        assert bob.expect_event("who", room="dev")["members"] == ["alice", "bob"]
    assert isinstance(alice.sock, ssl.SSLSocket) and alice.sock.version() in ("TLSv1.2", "TLSv1.3")
    connect = next(m for m in logs.messages() if m.startswith("connect") and "TLSv1" in m)
    assert alice.sock.version() in connect, connect


def test_the_server_refuses_tls_older_than_1_2(make_server: Any, tls_files: TLSFiles) -> None:
    server = tls_server(make_server, tls_files)
    old = tls_files.client_context()
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with pytest.warns(DeprecationWarning):  # as it should be
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    with capture_logs() as logs:  # the server logs from its own thread, maybe after the client gave up
        with pytest.raises(ssl.SSLError):
            server.tls_client(old)
        logs.expect("TLS handshake failed")
    server.tls_client(tls_files.client_context(), "fine").sync()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command (apt-get install openssl)")
def test_renegotiation_is_refused_and_costs_nobody_else_anything(make_server: Any, tls_files: TLSFiles) -> None:
    """TLS 1.3 has no renegotiation; in 1.2 a client may ask for one (`R` in openssl s_client) to make the server
    do a handshake's work again and again. It is refused: that client's connection ends, nobody else notices."""
    server = tls_server(make_server, tls_files)
    bob = server.client("bob", json_mode=True)
    s_client = subprocess.Popen(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{server.tls_port}", "-tls1_2", "-CAfile", tls_files.ca_file,
         "-verify_return_error"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert s_client.stdin is not None
    try:
        s_client.stdin.write(b"carol\n")
        s_client.stdin.flush()
        bob.expect_event("join", nick="carol")
        with capture_logs() as logs:
            s_client.stdin.write(b"R\n")  # s_client: renegotiate
            s_client.stdin.flush()
            logs.expect("disconnect", "carol", "TLS error")
        bob.expect_event("quit", nick="carol")
        out = s_client.communicate(timeout=WAIT)[0].decode(errors="replace")
        assert "RENEGOTIATING" in out and "Protocol  : TLSv1.2" in out
    finally:
        if s_client.poll() is None:
            s_client.kill()
            s_client.wait(WAIT)
    bob.sync()
    server.tls_client(tls_files.client_context(), "dave").sync()


def test_the_server_says_close_notify_when_it_ends_a_session(make_server: Any, tls_files: TLSFiles) -> None:
    server = tls_server(make_server, tls_files)
    context = tls_files.client_context()
    raw = socket.create_connection((server.host, server.tls_port), timeout=WAIT)
    sock = context.wrap_socket(raw, server_hostname=server.host, suppress_ragged_eofs=False)  # a bare EOF raises
    sock.sendall(b"erin\n/quit\n")
    received = b""
    while chunk := sock.recv(65536):  # b"" only after a close_notify
        received += chunk
    assert b"Goodbye" in received
    sock.close()


def test_a_client_that_says_close_notify_without_closing_tcp_is_seen_leaving(make_server: Any,
                                                                             tls_files: TLSFiles) -> None:
    """Its last line and its close_notify in one TCP segment, and no FIN after: no socket event will follow, yet
    the line is handled, the session ends, and the server answers with its own close_notify."""
    server = tls_server(make_server, tls_files)
    bob = server.client("bob", json_mode=True)
    sock = socket.create_connection((server.host, server.tls_port), timeout=WAIT)
    frank = RecordClient(sock, tls_files.client_context())
    sock.sendall(frank.encrypt(b"frank\n"))
    bob.expect_event("join", nick="frank")
    sock.sendall(frank.encrypt(b"last words\n") + frank.close_notify())
    bob.expect_event("message", text="last words")
    bob.expect_event("quit", nick="frank")
    assert b"last words" in frank.read_until_close_notify(WAIT)  # (an EOF without it raises SSLEOFError)
    wait_for(lambda: connections(server) == 1, what="frank's connection to close")
    sock.close()


# ----------------------------------------------------------------------------------- what the client trusts


def test_the_client_refuses_a_server_whose_certificate_another_ca_issued(make_server: Any,
                                                                          tls_files: TLSFiles, tmp_path: Any) -> None:
    server = tls_server(make_server, tls_files)
    other = make_tls_files(tmp_path / "other")

    def client(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
        return subprocess.run([*chat_command(), "client", "--plain", "--host", server.host, "--port",
                               str(server.tls_port), "--nick", "grace", *args], input="hello\n",
                              capture_output=True, text=True, timeout=WAIT * 3, env=env)

    wrong = client("--tls", "--ca", other.ca_file)
    assert wrong.returncode == 1
    assert "certificate is not trusted" in wrong.stderr and "unable to get local issuer" in wrong.stderr
    system_store = client("--tls")  # the throwaway CA is in no system store
    assert system_store.returncode == 1 and "certificate is not trusted" in system_store.stderr
    with pytest.raises(ssl.SSLCertVerificationError):
        LineClient(server.host, server.tls_port, tls=untrusted_context())

    bob = server.client("bob", json_mode=True)
    right = client("--ca", tls_files.ca_file)  # --ca implies --tls
    assert right.returncode == 0, right.stderr
    assert bob.expect_event("message", text="hello")["nick"] == "grace"
    assert "WARNING" not in right.stderr

    insecure = subprocess.run([*chat_command(), "client", "--plain", "--port", str(server.tls_port), "--nick",
                               "heidi", "--insecure"], input="unchecked\n", capture_output=True, text=True,
                              timeout=WAIT * 3, env={**os.environ, "CHAT_HOST": server.host})
    assert insecure.returncode == 0, insecure.stderr
    assert "WARNING: --insecure" in insecure.stderr and "NOT checked" in insecure.stderr
    assert bob.expect_event("message", text="unchecked")["nick"] == "heidi"

    on_plain = client("--tls", "--ca", tls_files.ca_file, "--port", str(server.port))  # the last --port wins
    assert on_plain.returncode == 1 and "is that port TLS?" in on_plain.stderr


def test_chat_tls_1_in_the_environment_turns_tls_on(make_server: Any, tls_files: TLSFiles) -> None:
    server = tls_server(make_server, tls_files)
    bob = server.client("bob", json_mode=True)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}, "CHAT_TLS": "1",
           "CHAT_CA": tls_files.ca_file, "CHAT_PORT": str(server.tls_port)}
    done = subprocess.run([*chat_command(), "client", "--plain", "--nick", "ivan"], input="from the env\n",
                          capture_output=True, text=True, timeout=WAIT * 3, env=env)
    assert done.returncode == 0, done.stderr
    assert bob.expect_event("message", text="from the env")["nick"] == "ivan"


def test_the_client_reconnects_over_tls(make_server: Any, tls_files: TLSFiles, sqlite_db: str) -> None:
    first = tls_server(make_server, tls_files)
    port = first.tls_port
    policy = ReconnectPolicy(first_delay=0.05, max_delay=0.2, jitter=0.0, quit_wait=WAIT)

    async def scenario() -> None:
        core = ClientCore("judy", "dev", f"{first.host}:{port}")
        session = ClientSession(core, first.host, port, policy, tls=tls_context(tls_files.ca_file))
        running = asyncio.create_task(session.run())

        async def until(condition: Callable[[], bool], what: str) -> None:
            deadline = time.monotonic() + WAIT
            while not condition():
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                await asyncio.sleep(0.01)

        await until(lambda: core.online and core.model.get("#dev") is not None and core.model.get("#dev").joined,
                    "online in #dev")
        await asyncio.to_thread(first.stop)
        await until(lambda: not core.online, "the disconnection")
        second = await asyncio.to_thread(tls_server, make_server, tls_files, db=sqlite_db, tls_port=port)
        await until(lambda: core.online and core.model.get("#dev").joined, "back online in #dev over TLS")
        kim = await asyncio.to_thread(second.client, "kim", json_mode=True)
        await asyncio.to_thread(kim.send, "/who dev")
        await asyncio.to_thread(kim.expect_event, "who", room="dev", members=["judy"])
        await session.quit()
        await asyncio.wait_for(running, WAIT)
        kim.close()

    asyncio.run(scenario())


# ------------------------------------------------------------------------------------ what the server bears


def test_garbage_http_and_plain_text_on_the_tls_port_are_closed_and_logged_once(make_server: Any,
                                                                                 tls_files: TLSFiles) -> None:
    server = tls_server(make_server, tls_files)
    alice = server.tls_client(tls_files.client_context(), "alice", json_mode=True)
    attempts = {
        "garbage": (os.urandom(300), b""),
        "http": (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"HTTP/1.0 400"),
        "plain": (b"mallory\n/join lobby\n", b"speaks TLS only"),
        "tls then garbage": (client_hello()[:40] + os.urandom(20000), b""),  # past its record's length
    }
    with capture_logs() as logs:
        for what, (data, answer) in attempts.items():
            sock = socket.create_connection((server.host, server.tls_port), timeout=WAIT)
            sock.sendall(data)
            sock.settimeout(WAIT)
            try:
                received = sock.recv(4096)
            except ConnectionResetError:
                received = b""
            assert received.startswith(answer) or answer in received, (what, received)
            assert closed_by_server(sock, WAIT), what
            sock.close()
            alice.send(f"still here after {what}")
            alice.expect_event("message", text=f"still here after {what}")
        wait_for(lambda: connections(server) == 1, what="every bad connection to be gone")
    lines = logs.messages()
    failed = [m for m in lines if "TLS handshake failed" in m]
    assert len(failed) == len(attempts), lines
    assert sum("plain HTTP" in m for m in failed) == 1 and sum("not TLS" in m for m in failed) >= 2
    bad_peers = {m.split()[1] for m in failed}  # "#3" and so on: each bad session is one line, nothing else
    assert all(sum(m.split()[1:2] == [peer] for m in lines) == 1 for peer in bad_peers), lines
    assert not logs.problems()


def test_half_handshakes_and_slowloris_lose_their_slots_at_the_timeout(make_server: Any,
                                                                       tls_files: TLSFiles) -> None:
    """Handshakes are connections: they count against --max-clients, and one that does not finish in time is
    closed, however busily it trickles bytes."""
    timeout = 1.5
    server = tls_server(make_server, tls_files, max_clients=4, tls_handshake_timeout=timeout)
    alice = server.tls_client(tls_files.client_context(), "alice")
    hello = client_hello()
    silent = socket.create_connection((server.host, server.tls_port), timeout=WAIT)
    half = socket.create_connection((server.host, server.tls_port), timeout=WAIT)
    half.sendall(hello[: len(hello) // 2])
    slow = socket.create_connection((server.host, server.tls_port), timeout=WAIT)
    slow.sendall(hello[:5])
    started = time.monotonic()
    wait_for(lambda: connections(server) == 4, what="the three handshakes to be accepted")
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):  # full: closed, not a word
        server.tls_client(tls_files.client_context())
    with capture_logs() as logs:
        sent = 5
        while not closed_by_server(slow, 0.1):  # a byte every 0.1 s: never done, never idle
            slow.sendall(hello[sent:sent + 1])
            sent += 1
            assert sent < len(hello) and time.monotonic() - started < timeout + WAIT, "slowloris outlived the timeout"
        assert time.monotonic() - started >= timeout
        assert closed_by_server(silent, WAIT) and closed_by_server(half, WAIT)
        wait_for(lambda: connections(server) == 1, what="the handshakes' slots to be free")
        assert sum("TLS handshake timeout" in m for m in logs.messages()) == 3
    newcomer = server.tls_client(tls_files.client_context(), "newcomer", json_mode=True)
    alice.send("room for everyone")
    newcomer.expect_event("message", text="room for everyone")
    for sock in (silent, half, slow):
        sock.close()


def test_handshakes_count_against_max_per_ip(make_server: Any, tls_files: TLSFiles) -> None:
    server = tls_server(make_server, tls_files, max_per_ip=2, exempt=())
    waiting = [socket.create_connection((server.host, server.tls_port), timeout=WAIT) for _ in range(2)]
    wait_for(lambda: connections(server) == 2, what="two handshakes under way")
    with capture_logs() as logs:
        extra = socket.create_connection((server.host, server.tls_port), timeout=WAIT)
        assert closed_by_server(extra, WAIT)
        logs.expect("refused", "too_many_connections")
    for sock in waiting:
        sock.close()
    wait_for(lambda: connections(server) == 0, what="the handshakes to be dropped")
    server.tls_client(tls_files.client_context(), "olivia").sync()


def test_a_peer_that_vanishes_mid_handshake_frees_its_slot_at_once(make_server: Any, tls_files: TLSFiles) -> None:
    server = tls_server(make_server, tls_files, tls_handshake_timeout=60)
    hello = client_hello()
    with capture_logs() as logs:
        for reset in (False, True):
            sock = socket.create_connection((server.host, server.tls_port), timeout=WAIT)
            sock.sendall(hello[:100])
            wait_for(lambda: connections(server) == 1, what="the handshake to be accepted")
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()
            wait_for(lambda: connections(server) == 0, what="its slot to be free", timeout=5)
    assert sum("during the TLS handshake" in m or "connection reset" in m for m in logs.messages()) == 2


def test_many_records_in_one_read_are_all_handled(make_server: Any, tls_files: TLSFiles) -> None:
    """64 KiB of TCP may carry several TLS records: everything decrypted is handed on at once, nothing is left in
    the TLS object's pending() where epoll would not see it (the last line would then wait forever)."""
    server = tls_server(make_server, tls_files)
    bob = server.client("bob", json_mode=True)
    quick = server.tls_client(tls_files.client_context(), "quick", json_mode=True)
    lines = [f"line {i} {'z' * 200}" for i in range(1000)]  # ~210 kB: thirteen 16 KiB records and more
    quick.send(*lines, "/ping all-read")
    quick.expect_event("pong", token="all-read")
    texts = [bob.expect_event("message", nick="quick")["text"] for _ in lines]
    assert texts == lines


def test_a_tls_reader_that_stalls_gets_everything_in_order_once_it_reads(make_server: Any,
                                                                         tls_files: TLSFiles) -> None:
    """The transport's own pending bytes (encrypted, not yet taken by the socket) go out first when the reader
    comes back, and everything after them, in order."""
    server = tls_server(make_server, tls_files)
    reader = server.tls_client(tls_files.client_context(), "reader", json_mode=True)
    talker = server.client("talker", json_mode=True)
    padding = "x" * 1000
    for i in range(300):  # ~400 kB for the reader: more than its socket buffers hold while it does not read
        talker.send(f"{i} {padding}")
    talker.sync()
    texts = [reader.expect_event("message", nick="talker")["text"].split()[0] for _ in range(300)]
    assert texts == [str(i) for i in range(300)]


def test_a_tls_reader_that_never_reads_is_cut_off_alone(make_server: Any, tls_files: TLSFiles) -> None:
    server = tls_server(make_server, tls_files, sendq=64 * 1024)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    raw.settimeout(WAIT)
    raw.connect((server.host, server.tls_port))
    stuck = tls_files.client_context().wrap_socket(raw, server_hostname=server.host)
    stuck.sendall(b"stuck\n")  # registers, then never reads again
    talker = server.client("talker", json_mode=True)
    watcher = server.tls_client(tls_files.client_context(), "watcher", json_mode=True)
    text = "y" * 1000
    with capture_logs() as logs:
        for i in range(0, 5000, 100):  # 5 MB: far more than the socket buffers and the 64 KiB queue hold
            talker.send(*[f"{j} {text}" for j in range(i, i + 100)])
            talker.expect_event("message", text=f"{i + 99} {text}")
            watcher.expect_event("message", text=f"{i + 99} {text}")  # the room keeps flowing meanwhile
        logs.expect("disconnect", "stuck@", "reason=send queue exceeded")
    quits = [json.loads(line) for line in watcher.seen if line.startswith('{"type":"quit"')]
    assert [(q["nick"], q["reason"]) for q in quits] == [("stuck", "send queue exceeded")]
    talker.sync()
    stuck.close()


# -------------------------------------------------------------------------------- certificates, start, reload


def test_a_certificate_or_key_that_cannot_be_used_is_one_line_and_exit_2(tls_files: TLSFiles, tmp_path: Any) -> None:
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    other = make_tls_files(tmp_path / "other")
    db = tmp_path / "never.sqlite"
    cases = {
        "missing": ([tls_files.cert.replace("fullchain", "nothing"), tls_files.key], "cannot read the TLS certificate"),
        "not a certificate": ([str(not_pem), tls_files.key], "is not a PEM certificate"),
        "not a key": ([tls_files.cert, str(not_pem)], "is not a PEM private key"),
        "another's key": ([tls_files.cert, other.key], "does not belong to the certificate"),
    }
    for what, ((cert, key), words) in cases.items():
        done = subprocess.run([*chat_command(), "serve", "--db", str(db), "--port", "0", "--tls-port", "0",
                               "--tls-cert", cert, "--tls-key", key], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (what, done.stderr)
        assert done.stderr.count("\n") == 1 and words in done.stderr, (what, done.stderr)
        assert done.stdout == ""
    assert not db.exists(), "the certificate is checked before the database is touched"


def test_sighup_reloads_the_certificate_new_connections_see_it_and_old_ones_keep_chatting(
        sqlite_db: str, tls_files: TLSFiles) -> None:
    with serve_process(sqlite_db, *tls_files.serve_args()) as proc:
        context = tls_files.client_context()
        old = proc.tls_client(context, "old", json_mode=True)
        assert isinstance(old.sock, ssl.SSLSocket)
        first_cert = old.sock.getpeercert(binary_form=True)

        renewed = tls_files.issue("renewed")  # what certbot does, then its deploy hook sends SIGHUP
        assert renewed != first_cert
        proc.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "TLS certificate reloaded" in proc.log, what="the reload to be logged")
        new = proc.tls_client(context, "new", json_mode=True)
        assert isinstance(new.sock, ssl.SSLSocket)
        assert new.sock.getpeercert(binary_form=True) == renewed
        assert old.sock.getpeercert(binary_form=True) == first_cert
        old.send("still here")
        assert new.expect_event("message", text="still here")["nick"] == "old"
        new.send("welcome back")
        old.expect_event("message", text="welcome back")

        with open(tls_files.cert, "w") as f:  # a renewal gone wrong: the old certificate stays
            f.write("truncated\n")
        proc.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "TLS reload failed" in proc.log, what="the failed reload to be logged")
        assert "still serving the previous certificate" in proc.log and "is not a PEM certificate" in proc.log
        third = proc.tls_client(context, "third")
        assert isinstance(third.sock, ssl.SSLSocket)
        assert third.sock.getpeercert(binary_form=True) == renewed
        old.send("and still")
        new.expect_event("message", text="and still")

        assert proc.terminate() == 0
        problems = log_problems(proc.log)
        assert len(problems) == 1 and "TLS reload failed" in problems[0], problems


def test_no_plain_serves_tls_only(sqlite_db: str, tls_files: TLSFiles) -> None:
    with serve_process(sqlite_db, "--no-plain", *tls_files.serve_args()) as proc:
        assert "(plain)" not in proc.banner and proc.tls_port == proc.port
        proc.tls_client(tls_files.client_context(), "lone").sync()
        listening = json.dumps(proc.banner)
        assert listening.count("127.0.0.1:") == 1, listening


def test_chat_bench_loads_a_tls_server_paced(make_server: Any, tls_files: TLSFiles) -> None:
    server = tls_server(make_server, tls_files)
    with capture_logs() as logs:
        done = subprocess.run([*chat_command(), "bench", "--port", str(server.tls_port), "--ca", tls_files.ca_file,
                               "--clients", "10", "--rate", "200", "--duration", "1"], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "over TLS" in done.stderr and "at 200/s" in done.stderr
        rows = dict(line.split("  ", 1) for line in done.stdout.splitlines() if "  " in line)
        assert rows["deliveries (to other members)"].strip() == "1,800 of 1,800"  # 200 messages, 9 others each
        assert rows["result"].strip() == "ok"
    assert sum(m.startswith("connect") and "TLSv1.3" in m for m in logs.messages()) == 10
