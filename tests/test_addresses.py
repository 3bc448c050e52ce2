"""The per-address limit's key and its exemptions, as tables: IPv4-mapped addresses are their IPv4 address, and
an IPv6 client counts by its /64."""

from __future__ import annotations

import pytest

from chat.server.addresses import limit_key
from chat.server.config import ServerConfig


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),  # an IPv4 client of a dual-stack :: listener
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),  # same /64, same key
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::1", "::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("not an address", "not an address"),
    ],
)
def test_limit_key(ip: str, key: str) -> None:
    assert limit_key(ip) == key


@pytest.mark.parametrize(
    ("ip", "exempt"),
    [("127.0.0.1", True), ("::ffff:127.0.0.1", True), ("::ffff:127.8.9.10", True), ("::1", True),
     ("::ffff:10.0.0.1", False), ("10.0.0.1", False), ("2001:db8::1", False), ("", False), ("garbage", False)],
)
def test_loopback_is_exempt_however_it_arrives(ip: str, exempt: bool) -> None:
    assert ServerConfig().is_exempt(ip) is exempt


def test_mapped_addresses_match_ipv4_exempt_networks() -> None:
    config = ServerConfig(exempt=("10.0.0.0/8",))
    assert config.is_exempt("::ffff:10.1.2.3") and not config.is_exempt("::ffff:11.1.2.3")
