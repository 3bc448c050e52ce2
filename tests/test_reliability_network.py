"""A peer that vanishes without a word (cable pulled, laptop closed, NAT forgot it) is found by the server's TCP
keepalive, whatever the client is (`nc` included). Proven with a real vanished peer: a client in its own network
namespace, whose link is then cut. Needs root and `ip` (iproute2); skips, saying why, without them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from harness import ServerThread, capture_logs, record_figures
from harness.netns import ip, namespace_link

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


def test_a_vanished_peer_is_found_by_keepalive(make_server: Callable[..., ServerThread]) -> None:
    with namespace_link() as link:
        server = make_server(host=link.host_ip, keepalive=1)  # probes after 1 s of silence; gone 2 s later
        bystander = server.client("bystander")
        ghost = link.python(CLIENT, link.host_ip, str(server.port))
        try:
            assert ghost.stdout is not None and ghost.stdout.readline() == "ready\n"
            bystander.expect("ghost joined")
            with capture_logs() as logs:
                ip("netns", "exec", link.ns, "ip", "link", "set", link.ns_link, "down")  # the cable is pulled
                cut = time.monotonic()
                assert bystander.expect("ghost quit", timeout=30) == "*** ghost quit (connection lost)"
                found = time.monotonic() - cut
                logs.expect("disconnect", "ghost@", "reason=timeout")
        finally:
            ghost.kill()
            ghost.wait(10)
    assert found < 15
    record_figures("vanished_peer", keepalive_s=1, found_after_s=round(found, 1))


PEERS = """
import json, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
held = []
for source in sys.argv[3:]:  # one connection from each source address, each kept open
    sock = socket.create_connection((host, port), timeout=10, source_address=(source, 0))
    held.append(sock)
    first = b""
    while b"\\n" not in first:
        data = sock.recv(4096)
        if not data:
            break
        first += data
    print(json.dumps([source, first.decode().split("\\n")[0]]), flush=True)
sys.stdin.readline()
"""


def test_an_ipv6_client_is_limited_per_64_not_per_address(make_server: Callable[..., ServerThread]) -> None:
    with namespace_link() as link:
        if not link.ns_ip6:
            pytest.skip("no IPv6 on the namespace link")
        server = make_server(host="::", max_per_ip=1)  # these addresses are not loopback: not exempt
        first, same_64, other_64 = link.ns_ip6
        peers = link.python(PEERS, link.host_ip6, str(server.port), first, same_64, other_64)
        try:
            assert peers.stdout is not None
            seen = dict(json.loads(peers.stdout.readline()) for _ in range(3))
        finally:
            peers.kill()
            peers.wait(10)
    near = first.rsplit("::", 1)[0] + "::/64"
    assert seen[first].startswith("*** Welcome to chat")
    assert seen[same_64] == f"*** Goodbye: Too many connections from {near} (at most 1). (too_many_connections)"
    assert seen[other_64].startswith("*** Welcome to chat")  # another /64 is another client
