"""DICOM over TLS on the receiver (PS3.15 B.1 "secure transport connection profile", with the
BCP 195 ciphers): TLS 1.2 or 1.3, ECDHE with AEAD ciphers only, a client certificate from the
consortium CA required (mutual authentication) and checked against the CA's revocation list,
which is re-read whenever ``pki/crl.pem`` changes — a revoked site is refused from its next
connection on, without a restart.

The handshake runs in the connection's own thread under a deadline (FIELD-NOTES: pynetdicom's
``ssl_context`` wraps sockets in its accept loop, so one client that connects and never speaks
TLS blocks every other association). Which site a certificate belongs to is checked when the
association request names its calling AE (``StoreSCP.on_requested``).
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from pathlib import Path
from typing import Any, Final

from pacs.pki_files import CA_CERT, CRL, SERVER

BCP195_CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20"  # TLS 1.2; TLS 1.3 suites are all AEAD


class TlsNotConfigured(RuntimeError):
    """The TLS port is set but a certificate is missing; the message names the command."""


class TlsAcceptor:
    def __init__(self, folder: Path, handshake_timeout_s: float) -> None:
        for name in (CA_CERT, CRL, f"{SERVER}.pem", f"{SERVER}.key"):
            if not (folder / name).exists():
                raise TlsNotConfigured(
                    f"DICOM TLS needs {folder / name}: run `yunying pki init` and `yunying pki issue-server`"
                )
        self.folder = folder
        self.handshake_timeout_s = handshake_timeout_s
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        self._crl_mtime = 0.0

    def context(self) -> ssl.SSLContext:
        """The server context, rebuilt when the CRL file changed."""
        mtime = os.stat(self.folder / CRL).st_mtime
        with self._lock:
            if self._context is None or mtime != self._crl_mtime:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.minimum_version = ssl.TLSVersion.TLSv1_2
                context.set_ciphers(BCP195_CIPHERS)
                context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
                context.load_cert_chain(self.folder / f"{SERVER}.pem", self.folder / f"{SERVER}.key")
                context.load_verify_locations(cafile=str(self.folder / CA_CERT))
                context.load_verify_locations(cafile=str(self.folder / CRL))
                context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
                context.verify_mode = ssl.CERT_REQUIRED
                self._context, self._crl_mtime = context, mtime
            return self._context

    def handshake(self, client: socket.socket, idle_timeout_s: float) -> ssl.SSLSocket:
        """Wrap and authenticate ``client``; raises ``ssl.SSLError`` or ``OSError`` (a timeout,
        a reset) — the caller closes the socket."""
        client.settimeout(self.handshake_timeout_s)
        wrapped = self.context().wrap_socket(client, server_side=True, do_handshake_on_connect=False)
        try:
            wrapped.do_handshake()
        except BaseException:
            wrapped.close()  # wrap_socket took over the descriptor: close it here
            raise
        wrapped.settimeout(idle_timeout_s)
        return wrapped


def peer_identity(sock: object) -> tuple[str, str] | None:
    """(common name, organisational unit) of a TLS peer's certificate; None for plain TCP."""
    if not isinstance(sock, ssl.SSLSocket):
        return None
    certificate: dict[str, Any] = dict(sock.getpeercert() or {})
    fields: dict[str, str] = {}
    for rdn in certificate.get("subject", ()):
        for pair in rdn:
            fields[str(pair[0])] = str(pair[1])
    return fields.get("commonName", ""), fields.get("organizationalUnitName", "")
