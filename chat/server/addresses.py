"""Who a peer is, for the per-address limit and its exemptions: pure functions of the address `accept()` gave.

Two things make the raw address string the wrong key. A listener on `::` is dual-stack: IPv4 clients arrive as
IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`), which must count, and be exempt, as the IPv4 address they are.
And one IPv6 subscriber is usually given a whole /64 (2^64 addresses): counting per address would let one
client open as many connections as it likes, so an IPv6 client is counted by its /64, as Ergo and InspIRCd do.
"""

from __future__ import annotations

import ipaddress

IPV6_LIMIT_PREFIX = 64  # an IPv6 client is counted by its /64: the smallest block a subscriber is usually given

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def peer_address(ip: str) -> Address | None:
    """The peer's address, an IPv4-mapped one as the IPv4 address it is; None if `ip` is not an IP address."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def limit_key(ip: str) -> str:
    """The key a connection from `ip` counts under for `--max-per-ip`: an IPv4 address itself (mapped or not),
    an IPv6 address its /64 (`2001:db8:1:2::/64`). Anything else (not an IP address) counts as itself."""
    address = peer_address(ip)
    if address is None:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        bare = ipaddress.IPv6Address(address.packed)  # without a %scope: the /64 is what counts
        return str(ipaddress.IPv6Network((bare, IPV6_LIMIT_PREFIX), strict=False))
    return str(address)
