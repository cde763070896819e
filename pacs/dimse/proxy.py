"""The PROXY protocol, version 2 (HAProxy's ``send-proxy-v2``): a load balancer in TCP mode
prefixes each connection with the client's real address. Without it every association would
come from the balancer's address, and the per-site address allow-list and the per-address
association cap would both break (issue G).

Only connections from the configured balancer addresses (``YUNYING_DICOM_PROXY_FROM``) must and
may carry the header: a client elsewhere cannot claim an address by sending one.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Final

SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
_HEADER: Final = struct.Struct("!12sBBH")
_INET: Final = struct.Struct("!4s4sHH")
_INET6: Final = struct.Struct("!16s16sHH")


class ProxyHeaderError(ValueError):
    """The balancer's connection did not start with a valid PROXY v2 header."""


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ProxyHeaderError(f"connection closed inside the PROXY header ({len(data)}/{count} bytes)")
        data += chunk
    return bytes(data)


def read_proxy_v2(sock: socket.socket) -> tuple[str, int] | None:
    """Consume the header; returns the client's (address, port), or None for a LOCAL
    connection (the balancer's own health check) or an address family we do not route."""
    signature, version_command, family, length = _HEADER.unpack(_read_exactly(sock, _HEADER.size))
    if signature != SIGNATURE or version_command >> 4 != 2:
        raise ProxyHeaderError("not a PROXY protocol v2 header (configure the balancer with send-proxy-v2)")
    body = _read_exactly(sock, length) if length else b""
    if version_command & 0x0F == 0:  # LOCAL
        return None
    transport = family >> 4
    if transport == 1 and len(body) >= _INET.size:
        source, _, port, _ = _INET.unpack_from(body)
        return str(ipaddress.IPv4Address(source)), port
    if transport == 2 and len(body) >= _INET6.size:
        source6, _, port, _ = _INET6.unpack_from(body)
        return str(ipaddress.IPv6Address(source6)), port
    return None


def header_v2(source: str, source_port: int, destination: str, destination_port: int) -> bytes:
    """A PROXY v2 PROXY-command header for TCP over IPv4 (tests, and an edge behind NAT)."""
    body = _INET.pack(
        ipaddress.IPv4Address(source).packed, ipaddress.IPv4Address(destination).packed, source_port, destination_port
    )
    return _HEADER.pack(SIGNATURE, 0x21, 0x11, len(body)) + body


def trusted(address: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
