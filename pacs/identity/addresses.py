"""Matching a peer's source address against an allow-list entry (an IP or a CIDR network)."""

from __future__ import annotations

import ipaddress


def parse_allowed(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Raises ``ValueError`` naming the entry when it is neither an address nor a network."""
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError as exc:
        raise ValueError(f"{entry!r} is not an IP address or CIDR network (e.g. 10.2.0.15 or 10.2.0.0/24)") from exc


def address_allowed(address: str, entry: str) -> bool:
    try:
        peer = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    network = parse_allowed(entry)
    return peer.version == network.version and peer in network
