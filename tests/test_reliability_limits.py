"""Limits: long lines, slow readers, floods, silent newcomers, connection caps. Each is a `chat serve` option
(see ServerConfig); each test provokes the limit for real on 127.0.0.1 and checks what everyone else sees."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Callable

import pytest

from chat.passwords import DEFAULT_PROFILE, PROFILES
from chat.server.config import DEFAULTS
from harness import (
    LineClient,
    ServerThread,
    Swarm,
    capture_logs,
    chat_command,
    peak_rss_bytes,
    record_figures,
    rss_bytes,
    serve_process,
    stored_messages,
)

# ------------------------------------------------------------------------------------------ line length


def test_an_endless_line_gets_one_error_and_is_never_buffered(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(max_line=1024)
    alice = server.client("alice")
    bob = server.client("bob")
    chunk = b"x" * 65536
    sent = 0
    for _ in range(160):  # 10 MiB without a newline
        alice.send_raw(chunk)
        sent += len(chunk)
    # the refusal comes while the line is still arriving, not at its end
    assert alice.expect("[error").startswith("[error line_too_long]")
    buffered = server.loop.call_soon(
        lambda: max(c.codec.buffered for c in server.loop.connections.values())).result(10)
    assert buffered <= 1024 + 1
    alice.send_raw(b"tail of the long line\nafter it\n")
    assert alice.expect("alice: ") == "[#lobby] alice: after it"
    assert bob.expect("alice: ") == "[#lobby] alice: after it"
    assert sum("[error" in line for line in alice.seen) == 1  # one error for the whole line
    record_figures("long_line", bytes_streamed=sent, max_buffered=buffered)


# -------------------------------------------------------------------------------------- outbound queue


def test_a_client_that_never_reads_is_dropped_and_does_not_stall_the_room(
    make_server: Callable[..., ServerThread],
) -> None:
    server = make_server(sendq=64 * 1024)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    stalled.connect((server.host, server.port))
    stalled.sendall(b"stalled\n")  # registers, then never reads again
    server.wait_until(lambda loop: "stalled" in loop.state.nicks, what="stalled to register")
    swarm = Swarm(server.host, server.port)  # the others read all the time, from one thread
    talker, reader = swarm.connect(2)
    swarm.register([talker, reader], ["talker", "reader"])
    text = "y" * 1000
    count = 5000  # 5 MB: far more than the socket buffers and the 64 KiB queue hold
    worst = 0.0
    with capture_logs() as logs:
        for i in range(0, count, 100):
            talker.send(*[f"{j} {text}" for j in range(i, i + 100)])
            start = time.monotonic()  # the room keeps flowing while the stalled client's queue fills
            swarm.sync([reader], f"s{i}")
            worst = max(worst, time.monotonic() - start)
        swarm.sync([talker], "done")  # all its lines were handled: the reader has them or soon will

        def said() -> list[str]:
            return [line for line in reader.lines if line.startswith("[#lobby] talker: ")]

        swarm.run_until(lambda: len(said()) >= count, what="every line said")
        assert said() == [f"[#lobby] talker: {j} {text}" for j in range(count)]
        assert "*** stalled quit (send queue exceeded)" in reader.lines
        logs.expect("disconnect", "stalled@", "reason=send queue exceeded")
    swarm.close_all()
    assert server.inspect(lambda loop: "stalled" not in loop.state.nicks)
    stalled.settimeout(10)
    while True:  # the server closed it: reading what was queued ends in EOF (or a reset)
        try:
            if not stalled.recv(1 << 20):
                break
        except ConnectionResetError:
            break
    stalled.close()
    assert worst < 2.0, f"a ping took {worst:.2f} s while one client was stalled"
    record_figures("sendq", messages_checked=count, worst_ping_s=round(worst, 3))


# --------------------------------------------------------------------------------------- flood control


def _lines_from(client: LineClient, nick: str, count: int) -> list[tuple[float, str]]:
    got = []
    while len(got) < count:
        line = client.expect(lambda line: line.startswith(f"[#lobby] {nick}: "), timeout=15)
        got.append((time.monotonic(), line.split(": ", 1)[1]))
    return got


def test_a_flooder_is_slowed_not_dropped_and_others_are_not_starved(
    make_server: Callable[..., ServerThread],
) -> None:
    rate, burst = 20.0, 5
    server = make_server(rate=rate, burst=burst, flood_limit=50)
    flooder = server.client("flooder")
    other = server.client("other")
    bystander = server.client("bystander")
    flooder.send(*[f"paste {i}" for i in range(40)])  # a paste of 40 lines at once
    got = _lines_from(other, "flooder", burst)  # the burst comes at once; the rest waits (the pace is checked)
    start = time.monotonic()
    bystander.sync("while-flooded")  # the others are served at once, not after the flooder's queue
    ping = time.monotonic() - start
    got += _lines_from(other, "flooder", 40 - burst)
    assert [text for _, text in got] == [f"paste {i}" for i in range(40)]  # none dropped, in order
    paced = got[-1][0] - got[20][0]  # lines 21-39 come at the sustained rate (the burst has long gone)
    assert paced >= 19 / rate * 0.8, f"19 lines past the burst came within {paced:.2f} s"
    assert ping < 0.5, f"another client's ping took {ping:.2f} s"
    flooder.sync()  # still connected
    record_figures("flood_paced", lines=40, paced_s=round(paced, 2), other_ping_s=round(ping, 3))


def test_a_paste_through_a_pipe_is_slowed_then_answered_in_full(make_server: Callable[..., ServerThread]) -> None:
    """`cat file | nc`: many lines, then EOF. Every line is handled at the flood pace, then the close."""
    server = make_server(rate=50.0, burst=5, flood_limit=50)
    watcher = server.client("watcher")
    piped = LineClient(server.host, server.port)
    piped.send("piped", *[f"line {i}" for i in range(30)])
    piped.sock.shutdown(socket.SHUT_WR)
    lines = piped.expect_closed()
    assert [line for line in lines if line.startswith("[#lobby] piped: ")] == [
        f"[#lobby] piped: line {i}" for i in range(30)]
    assert [text for _, text in _lines_from(watcher, "piped", 30)] == [f"line {i}" for i in range(30)]


def test_a_client_flooding_far_past_the_limit_is_disconnected_with_a_reason(
    make_server: Callable[..., ServerThread],
) -> None:
    server = make_server(rate=5.0, burst=10, flood_limit=50)
    flooder = server.client("flooder")
    other = server.client("other")
    with capture_logs() as logs:
        flooder.send(*[f"spam {i}" for i in range(500)])
        closing = flooder.expect_closed()
        bye = "*** Goodbye: Too many lines too fast (more than 50 waiting). (flood) Your last stored message was "
        assert closing[-1].startswith(bye)
        assert other.expect("flooder quit") == "*** flooder quit (flood)"
        logs.expect("disconnect", "flooder@", "reason=flood")
    # the burst (what is left of it after the nick line) was accepted and stored, and the flooder got the echo
    # of every one of those (its receipts) before the goodbye, which names the last one stored
    stored = stored_messages(server.config.db)
    texts = [text for _, _, text in stored.values()]
    assert 1 <= len(texts) <= 10 and texts == [f"spam {i}" for i in range(len(texts))]
    assert [line for line in closing if "flooder: spam" in line] == [f"[#lobby] flooder: {t}" for t in texts]
    assert closing[-1] == f"{bye}{max(stored)}."
    other.sync()


def test_rate_zero_turns_flood_control_off(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(rate=0, burst=1, flood_limit=1)
    fast = server.client("fast")
    fast.send(*[f"n {i}" for i in range(2000)])
    assert [text for _, text in _lines_from(fast, "fast", 2000)] == [f"n {i}" for i in range(2000)]


# ------------------------------------------------------------------------------------ silent newcomers


def test_a_client_that_never_gives_a_nickname_is_closed(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(nick_timeout=1.0)
    with capture_logs() as logs:
        start = time.monotonic()
        silent = LineClient(server.host, server.port)
        named = LineClient(server.host, server.port)
        named.register("named")
        closing = silent.expect_closed(timeout=5)
        took = time.monotonic() - start
        logs.expect("disconnect", "reason=registration timeout")
    assert closing[-1] == "*** Goodbye: No nickname was chosen within 1 seconds. (registration_timeout)"
    assert 1.0 <= took < 3.5
    named.sync()  # the named client is not touched


def test_accepted_sockets_probe_for_dead_peers(make_server: Callable[..., ServerThread]) -> None:
    """TCP keepalive on the server's side works for every client, `nc` included: the peer needs no help."""
    server = make_server(keepalive=8)
    client = server.client("alice")

    def options() -> dict[str, int]:
        (s,) = server.loop.connections.values()
        get = s.transport.sock.getsockopt
        return {"keepalive": get(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                "idle": get(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                "interval": get(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                "count": get(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                "user_timeout_ms": get(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)}

    assert server.loop.call_soon(options).result(10) == {
        "keepalive": 1, "idle": 8, "interval": 2, "count": 4, "user_timeout_ms": 16000}
    client.close()


# --------------------------------------------------------------------------------------- connection caps


def test_a_full_server_refuses_with_a_clear_line(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(max_clients=5)
    swarm = Swarm(server.host, server.port)
    try:
        admitted = swarm.connect(5)
        swarm.expect_all(admitted, "Welcome to chat")
        with capture_logs() as logs:
            refused = LineClient(server.host, server.port)
            assert refused.expect_closed() == ["*** Goodbye: The server is full; please try again later. "
                                               "(server_full)"]
            logs.expect("refused 127.0.0.1:", "server_full")
        admitted[0].send("/quit")
        swarm.run_until(lambda: admitted[0].closed, what="a place to free up")
        server.wait_until(lambda loop: len(loop.connections) == 4, what="the close to be handled")
        LineClient(server.host, server.port).register("latecomer")  # a freed place is taken again
    finally:
        swarm.close_all()


def test_connections_per_address_are_capped_and_exempt_networks_are_not(
    make_server: Callable[..., ServerThread],
) -> None:
    # 127.0.0.1 stays exempt; 127.0.0.2 (also this machine, another source address) is treated as remote
    server = make_server(max_per_ip=3, exempt=("127.0.0.1/32",))
    swarm = Swarm(server.host, server.port)
    try:
        remote = swarm.connect(3, prefix="remote", source="127.0.0.2")
        swarm.expect_all(remote, "Welcome to chat")
        (fourth,) = swarm.connect(1, prefix="fourth", source="127.0.0.2")
        swarm.run_until(lambda: fourth.closed, what="the fourth connection to be refused")
        assert fourth.lines == [
            "*** Goodbye: Too many connections from 127.0.0.2 (at most 3). (too_many_connections)"]
        local = swarm.connect(10, prefix="local")  # the exempt address is not limited
        swarm.expect_all(local, "Welcome to chat")
        remote[0].send("/quit")
        swarm.run_until(lambda: remote[0].closed, what="one remote client to leave")
        server.wait_until(lambda loop: loop.per_ip.get("127.0.0.2") == 2, what="the count to go down")
        again = swarm.connect(1, prefix="again", source="127.0.0.2")
        swarm.expect_all(again, "Welcome to chat")
    finally:
        swarm.close_all()


def test_loopback_is_exempt_by_default(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(max_per_ip=2)
    swarm = Swarm(server.host, server.port)
    try:
        for source in ("127.0.0.1", "127.0.0.9"):
            clients = swarm.connect(5, prefix=source, source=source)
            swarm.expect_all(clients, "Welcome to chat")
        assert server.inspect(lambda loop: dict(loop.per_ip)) == {}
    finally:
        swarm.close_all()


def _ipv6_problem() -> str | None:
    """Why a dual-stack `::` listener cannot be tested here, or None."""
    if not socket.has_ipv6:
        return "this Python has no IPv6"
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as e:
        return f"no IPv6 loopback here: {e}"
    return None


def test_a_dual_stack_listener_keeps_ipv4_loopback_exempt(make_server: Callable[..., ServerThread]) -> None:
    problem = _ipv6_problem()
    if problem:
        pytest.skip(problem)
    server = make_server(host="::", max_per_ip=2)
    try:
        clients = [LineClient("127.0.0.1", server.port) for _ in range(5)]  # arrive as ::ffff:127.0.0.1
    except OSError as e:
        pytest.skip(f"this :: listener takes no IPv4 (net.ipv6.bindv6only=1?): {e}")
    clients += [LineClient("::1", server.port) for _ in range(3)]
    for c in clients:
        c.expect("Welcome to chat")
    assert server.loop.call_soon(lambda: dict(server.loop.per_ip)).result(5) == {}  # nobody counted


def test_the_exempt_option_replaces_the_default(sqlite_db: str) -> None:
    with serve_process(sqlite_db, "--max-per-ip", "2", "--exempt", "10.0.0.0/8") as proc:
        first, second = proc.client(), proc.client()
        third = proc.client()
        assert third.expect_closed()[-1].endswith("(at most 2). (too_many_connections)")
        first.expect("Welcome to chat")
        second.expect("Welcome to chat")


# ------------------------------------------------------------------------------------------ password hashing

HASH_MEMORY = PROFILES[DEFAULT_PROFILE].memory_cost * 1024  # bytes one argon2id hash holds while it runs
HASHING_SLACK = 16 * 2**20  # the rest of what a storm costs: its connections, jobs and answers (~2 MiB measured)


def test_a_login_storm_holds_hashing_memory_to_the_password_threads(sqlite_db: str) -> None:
    """Each argon2id hash holds 64 MiB while it runs (the real profile here); the pool runs at most
    --password-threads at once, whatever waits, so a storm costs that many hashes' memory and no more, and gives
    it back when it is over (argon2's buffer is past glibc's mmap threshold: unmapped when freed). Any client can
    start a hash (/register, /login to an account), so this is the bound every other memory check counts on."""
    threads = DEFAULTS.password_threads
    storm = threads + DEFAULTS.password_queue  # every job fits: all are checked, none refused busy
    with serve_process(sqlite_db, "--login-burst", str(storm), "--login-per-minute", str(storm)) as server:
        owner = server.client()
        owner.register_account("owner", "correct horse battery")
        owner.send("/quit")
        owner.expect_closed()
        baseline = rss_bytes(server.proc.pid)
        peak_before = peak_rss_bytes(server.proc.pid)  # the registration's hash, one at a time
        guessers = [server.client() for _ in range(storm)]
        for g in guessers:
            g.send("/login owner wrong-wrong-wrong")
        answers = [g.expect("[error ", timeout=120) for g in guessers]  # 10 hashes, 2 at a time, at nice +10
        peak = peak_rss_bytes(server.proc.pid)
        after = rss_bytes(server.proc.pid)
    record_figures("login_storm_memory", threads=threads, jobs=storm, hash_mib=HASH_MEMORY >> 20,
                   growth_mib=round((peak - baseline) / 2**20, 1), after_mib=round((after - baseline) / 2**20, 1))
    assert all(a.startswith("[error bad_password]") for a in answers), answers
    assert peak > peak_before, "the storm's hashes never ran side by side: this measured nothing"
    assert peak - baseline < threads * HASH_MEMORY + HASHING_SLACK, (
        f"{storm} password checks grew the server by {(peak - baseline) >> 20} MiB: more than {threads} hashes")
    assert after - baseline < HASHING_SLACK, f"{(after - baseline) >> 20} MiB kept after the storm"


LIMIT_OPTIONS = ("--max-line", "--sendq", "--rate", "--burst", "--flood-limit", "--nick-timeout", "--max-clients",
                 "--max-per-ip", "--max-rooms-per-client", "--new-rooms-per-minute", "--new-rooms-burst", "--exempt",
                 "--keepalive", "--busy-timeout", "--tls-handshake-timeout", "--log-level", "--log-format")


def test_every_limit_is_a_documented_option() -> None:
    result = subprocess.run([*chat_command(), "serve", "--help"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})
    plain = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)
    missing = [option for option in LIMIT_OPTIONS if option not in plain]
    assert not missing, f"not in chat serve --help: {missing}"
