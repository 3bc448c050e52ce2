"""A network namespace joined to this one by a veth pair: real remote peers (other addresses, a link that can
be cut) without touching this machine's own interfaces. Needs root and `ip` (iproute2); skips, saying why."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@dataclass(frozen=True)
class NamespaceLink:
    ns: str  # the namespace's name, for `ip netns exec`
    ns_link: str  # its end of the veth pair
    host_ip: str  # this side's IPv4 address
    ns_ip: str  # the namespace's IPv4 address
    host_ip6: str  # this side's IPv6 address, in `ns_ip6[0]`'s /64
    ns_ip6: tuple[str, ...]  # the namespace's IPv6 addresses: two in one /64, then one in another /64

    def run(self, *command: str, **kwargs: object) -> subprocess.Popen[str]:
        """Start `command` inside the namespace (pipes on stdin and stdout, text mode)."""
        return subprocess.Popen(["ip", "netns", "exec", self.ns, *command], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, **kwargs)  # type: ignore[call-overload]

    def python(self, script: str, *args: str) -> subprocess.Popen[str]:
        return self.run(sys.executable, "-c", script, *args)


@contextmanager
def namespace_link() -> Iterator[NamespaceLink]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create a network namespace")
    if not shutil.which("ip"):
        pytest.skip("needs ip (iproute2)")
    tag = os.getpid() % 10000
    ns, host_link, ns_link = f"chatrel{tag}", f"vch{tag}", f"vcn{tag}"
    subnet = 16 + os.getpid() % 200
    host_ip, ns_ip = f"10.231.{subnet}.1", f"10.231.{subnet}.2"
    near, far = f"fd63:6861:7400:{tag:x}", f"fd63:6861:7401:{tag:x}"  # fd + "chat": private, unique-local
    host_ip6 = f"{near}::1"
    ns_ip6: tuple[str, ...] = (f"{near}::2", f"{near}::3", f"{far}::2")
    try:
        ip("netns", "add", ns)
    except (subprocess.CalledProcessError, OSError) as e:
        pytest.skip(f"cannot create a network namespace here: {e}")
    try:
        ip("link", "add", host_link, "type", "veth", "peer", "name", ns_link)
        ip("link", "set", ns_link, "netns", ns)
        ip("addr", "add", f"{host_ip}/30", "dev", host_link)
        ip("netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_link)
        ip("link", "set", host_link, "up")
        ip("netns", "exec", ns, "ip", "link", "set", ns_link, "up")
        ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        try:  # nodad: usable at once, without duplicate address detection's second of waiting
            ip("-6", "addr", "add", f"{host_ip6}/64", "dev", host_link, "nodad")
            for address in ns_ip6:
                ip("netns", "exec", ns, "ip", "-6", "addr", "add", f"{address}/64", "dev", ns_link, "nodad")
            ip("-6", "route", "add", f"{far}::/64", "dev", host_link)
        except subprocess.CalledProcessError as e:  # IPv6 disabled here: the IPv4 half still works
            host_ip6, ns_ip6 = "", ()
            print(f"no IPv6 on the namespace link: {e.stderr!r}")
        yield NamespaceLink(ns, ns_link, host_ip, ns_ip, host_ip6, ns_ip6)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", host_link], capture_output=True, timeout=10)
