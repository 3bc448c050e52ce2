"""A peer that vanishes without a word (cable pulled, laptop closed, NAT forgot it) is found by the server's TCP
keepalive, whatever the client is (`nc` included). Proven with a real vanished peer: a client in its own network
namespace, whose link is then cut. Needs root and `ip` (iproute2); skips, saying why, without them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from harness import ServerThread, capture_logs, record_figures

CLIENT = """
import socket, sys
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
sock.sendall(b"ghost\\n")
seen = b""
while b"You joined" not in seen:
    seen += sock.recv(4096)
print("ready", flush=True)
sys.stdin.readline()  # then it just sits there, as a client on a dead link does
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@contextmanager
def namespace_link() -> Iterator[tuple[str, str, str, str]]:
    """A network namespace joined to this one by a veth pair: (namespace, its link, host address, its address)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a network namespace")
    if not shutil.which("ip"):
        pytest.skip("needs ip (iproute2)")
    tag = f"{os.getpid() % 10000}"
    ns, host_link, ns_link = f"chatrel{tag}", f"vch{tag}", f"vcn{tag}"
    subnet = 16 + os.getpid() % 200
    host_ip, ns_ip = f"10.231.{subnet}.1", f"10.231.{subnet}.2"
    try:
        _ip("netns", "add", ns)
    except (subprocess.CalledProcessError, OSError) as e:
        pytest.skip(f"cannot create a network namespace here: {e}")
    try:
        _ip("link", "add", host_link, "type", "veth", "peer", "name", ns_link)
        _ip("link", "set", ns_link, "netns", ns)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_link)
        _ip("link", "set", host_link, "up")
        _ip("netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_link)
        _ip("netns", "exec", ns, "ip", "link", "set", ns_link, "up")
        _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield ns, ns_link, host_ip, ns_ip
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", host_link], capture_output=True, timeout=10)


def test_a_vanished_peer_is_found_by_keepalive(make_server: Callable[..., ServerThread]) -> None:
    with namespace_link() as (ns, ns_link, host_ip, _ns_ip):
        server = make_server(host=host_ip, keepalive=1)  # probes after 1 s of silence; gone 2 s later
        bystander = server.client("bystander")
        ghost = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, host_ip,
                                  str(server.port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert ghost.stdout is not None and ghost.stdout.readline() == "ready\n"
            bystander.expect("ghost joined")
            with capture_logs() as logs:
                _ip("netns", "exec", ns, "ip", "link", "set", ns_link, "down")  # the cable is pulled
                cut = time.monotonic()
                assert bystander.expect("ghost quit", timeout=30) == "*** ghost quit (connection lost)"
                found = time.monotonic() - cut
                logs.expect("disconnect", "ghost@", "reason=timeout")
        finally:
            ghost.kill()
            ghost.wait(10)
    assert found < 15
    record_figures("vanished_peer", keepalive_s=1, found_after_s=round(found, 1))
