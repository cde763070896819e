"""The DICOM receiver process: the hardened server, the store and Q/R SCPs on one port, and its
start-up sweeps."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import structlog
from pynetdicom import _config, dimse_messages
from sqlalchemy.orm import Session, sessionmaker

from pacs.dimse import quick
from pacs.dimse.balance import SharedListening, SharedLoad
from pacs.dimse.contexts import receiver_contexts
from pacs.dimse.qr_scp import QueryRetrieveSCP
from pacs.dimse.server import HardenedServer
from pacs.dimse.spool import SpoolFile
from pacs.dimse.store_scp import StoreSCP
from pacs.dimse.store_scu import ObjectSource, RetrieveAE, RetrieveAssociation
from pacs.dimse.tls import TlsAcceptor
from pacs.ingest import Ingest
from pacs.periodic import Periodic
from pacs.settings import Settings

log = structlog.get_logger(__name__)
INCOMING_PREFIX = "rx-"


def receive_into(incoming: Path) -> None:
    """Make pynetdicom write each arriving data set straight to a file under ``incoming``
    (on the store's filesystem, so the finished file is hard-linked, not copied), instead of
    holding it in memory. A process-wide pynetdicom setting, hence a function of its own."""
    incoming.mkdir(parents=True, exist_ok=True)
    _config.STORE_RECV_CHUNKED_DATASET = True

    def spool(**kwargs: Any) -> SpoolFile:
        return SpoolFile(tempfile.NamedTemporaryFile(dir=str(incoming), prefix=INCOMING_PREFIX, **kwargs))

    dimse_messages.NamedTemporaryFile = spool  # type: ignore[assignment,attr-defined]
    # Its File Meta at the head of each spooled data set, encoded by hand (pacs/dimse/quick.py).
    dimse_messages.create_file_meta = quick.create_file_meta  # type: ignore[assignment,attr-defined]
    dimse_messages.write_file_meta_info = quick.write_file_meta_info  # type: ignore[assignment,attr-defined]


def sweep_partial_files(incoming: Path, max_age_s: float) -> int:
    """Delete temp files of associations that died mid-transfer (pynetdicom never removes
    them). Only files untouched for ``max_age_s`` go: a live transfer writes every PDU."""
    removed = 0
    cutoff = time.time() - max_age_s
    if not incoming.exists():
        return 0
    for path in incoming.glob(f"{INCOMING_PREFIX}*"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    if removed:
        log.info("receiver.partial_files_swept", count=removed, folder=str(incoming))
    return removed


class PartialFileSweeper(Periodic):
    """Deletes what dead associations left in the incoming folder, every half ``max_age_s``
    (between 1 s and 5 min). A full or unreadable folder is logged and tried again."""

    expected = (*Periodic.expected, OSError)

    def __init__(self, incoming: Path, max_age_s: float) -> None:
        super().__init__("partial-sweeper", max(1.0, min(300.0, max_age_s / 2)))
        self.incoming = incoming
        self.max_age_s = max_age_s

    def round(self) -> None:
        sweep_partial_files(self.incoming, self.max_age_s)


class Receiver:
    """A running DICOM receiver. ``start()`` returns once the port is listening."""

    def __init__(self, settings: Settings, ingest: Ingest, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.scp = StoreSCP(settings, ingest, sessions)
        outgoing = ObjectSource(ingest.store, (settings.home / "outgoing").resolve())
        self.qr_scp = QueryRetrieveSCP(settings, sessions, outgoing, admission=self.scp)
        self.ae = RetrieveAE(ae_title=settings.ae_title)
        self.ae.maximum_pdu_size = settings.max_pdu
        self.ae.maximum_associations = settings.max_associations
        self.ae.acse_timeout = settings.acse_timeout_s
        self.ae.dimse_timeout = settings.dimse_timeout_s
        self.ae.network_timeout = settings.network_timeout_s
        self.ae.require_called_aet = True
        for context in receiver_contexts():  # not ``supported_contexts = ``: its setter drops the roles
            self.ae.add_supported_context(
                str(context.abstract_syntax),
                context.transfer_syntax,
                scu_role=context.scu_role,
                scp_role=context.scp_role,
            )
        # Handlers a deployable adds on top (the clinic edge: Storage Commitment), bound at start().
        self.extra_handlers: list[tuple[Any, Any]] = []
        self.server: HardenedServer | None = None
        self.tls_server: HardenedServer | None = None
        self._thread: threading.Thread | None = None
        self.partial_sweeper = PartialFileSweeper(settings.incoming_path, settings.partial_file_max_age_s)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    @property
    def tls_port(self) -> int:
        assert self.tls_server is not None
        return int(self.tls_server.server_address[1])

    def _serve(
        self,
        host: str,
        port: int,
        *,
        tls: TlsAcceptor | None,
        listen_socket: socket.socket | None,
        load: SharedLoad | None,
    ) -> HardenedServer:
        server: HardenedServer = self.ae.make_server(  # type: ignore[assignment]
            (host, port),
            evt_handlers=[*self.scp.handlers(), *self.qr_scp.handlers(), *self.extra_handlers],
            server_class=HardenedServer,
            max_pdu_bytes=self.settings.max_pdu,
            pdu_deadline_s=self.settings.pdu_deadline_s,
            socket_idle_timeout_s=self.settings.socket_idle_timeout_s,
            listen_socket=listen_socket,
            load=load,
            association_class=RetrieveAssociation,  # C-GET sends stored instances back over it
            tls=tls,
            proxy_from=self.settings.proxy_networks,
        )
        self.ae._servers.append(server)  # so server.shutdown() and ae.shutdown() find it
        name = "dicom-receiver-tls" if tls else "dicom-receiver"
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name=name, daemon=True)
        thread.start()
        if tls is None:
            self._thread = thread
        return server

    def start(self, shared: SharedListening | None = None) -> None:
        """Listen on the DICOM port, and on the TLS port when ``dicom_tls_port`` is set (raises
        ``TlsNotConfigured`` naming the missing certificate). With ``shared``, accept from
        sockets a supervisor bound for several worker processes instead of binding them."""
        receive_into(self.settings.incoming_path)
        sweep_partial_files(self.settings.incoming_path, self.settings.partial_file_max_age_s)
        tls = (
            TlsAcceptor(self.settings.pki_path, self.settings.tls_handshake_timeout_s)
            if self.settings.dicom_tls_port
            else None
        )
        load = shared.load if shared else None
        self.server = self._serve(
            self.settings.dicom_host,
            self.settings.dicom_port,
            tls=None,
            listen_socket=shared.plain if shared else None,
            load=load,
        )
        if tls is not None:
            self.tls_server = self._serve(
                self.settings.dicom_tls_host,
                self.settings.dicom_tls_port,
                tls=tls,
                listen_socket=shared.tls if shared else None,
                load=load,
            )
            log.info("receiver.listening_tls", port=self.tls_port, pki=str(self.settings.pki_path))
        self.partial_sweeper.start()
        log.info(
            "receiver.listening",
            ae_title=self.settings.ae_title,
            host=self.settings.dicom_host,
            port=self.port,
            pid=os.getpid(),
        )

    def stop(self) -> None:
        self.partial_sweeper.stop()
        for server in (self.server, self.tls_server):
            if server is not None:
                server.shutdown()
        self.ae.shutdown()
