"""The DIMSE edge: association admission, C-ECHO and C-STORE handlers over ``Ingest``.

Handlers are thin: they find who is calling (a site AE, or a configured DICOM node that may
query/retrieve), enforce per-association limits, and map the ingest outcome to a status
through ``statuses.c_store_status``. The Q/R handlers (``qr_scp.py``) ask ``caller_of`` who
holds an association.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import structlog
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_STORE
from sqlalchemy.orm import Session, sessionmaker

from pacs import events
from pacs.dimse.spool import SpoolFile
from pacs.dimse.statuses import NOT_AUTHORISED, OUT_OF_RESOURCES, SUCCESS, c_store_status, status_dataset
from pacs.dimse.tls import peer_identity
from pacs.identity.nodes import Caller, NodeEntry, load_nodes, match_calling_node
from pacs.identity.sites import SiteAEEntry, load_site_aes, match_calling_site
from pacs.index.db import IndexUnavailable, append_change, transaction
from pacs.ingest import Ingest, Origin, OutcomeKind
from pacs.metrics import ASSOCIATIONS, OPEN_ASSOCIATIONS
from pacs.settings import Settings

log = structlog.get_logger(__name__)

# PS3.8 9.3.4 A-ASSOCIATE-RJ (result, source, reason)
REJECT_CALLING_AE = (0x01, 0x01, 0x03)  # rejected-permanent, service-user, calling AE not recognized
REJECT_CALLED_AE = (0x01, 0x01, 0x07)  # rejected-permanent, service-user, called AE not recognized
REJECT_LOCAL_LIMIT = (0x02, 0x03, 0x02)  # rejected-transient, service-provider (presentation), local limit exceeded
REJECT_CONGESTION = (0x02, 0x03, 0x01)  # rejected-transient, service-provider (presentation), temporary congestion


@dataclass(frozen=True)
class AllowList:
    site_aes: list[SiteAEEntry]
    nodes: list[NodeEntry]


@dataclass
class AssociationState:
    caller: Caller
    address: str
    instances: int = 0
    bytes: int = 0


class StoreSCP:
    """Binds to a pynetdicom server; one instance serves all associations of a receiver."""

    def __init__(self, settings: Settings, ingest: Ingest, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.ingest = ingest
        self.sessions = sessions
        self._states: dict[int, AssociationState] = {}
        self._per_address: dict[str, int] = {}
        self._lock = threading.Lock()
        self._ae_cache: tuple[AllowList | None, float] = (None, 0.0)

    def handlers(self) -> list[tuple[Any, Any]]:
        return [
            (evt.EVT_REQUESTED, self.on_requested),
            (evt.EVT_C_ECHO, self.on_c_echo),
            (evt.EVT_C_STORE, self.on_c_store),
            (evt.EVT_CONN_CLOSE, self.on_closed),
        ]

    def on_requested(self, event: evt.Event) -> None:
        """Admit an association only from a configured site AE or DICOM node at its allowed address."""
        assoc = event.assoc
        primitive = assoc.requestor.primitive
        assert primitive is not None  # EVT_REQUESTED fires once the A-ASSOCIATE-RQ is decoded
        calling = primitive.calling_ae_title.strip()
        called = primitive.called_ae_title.strip()
        address = assoc.requestor.address
        if called != self.settings.ae_title:
            self._reject(
                assoc, REJECT_CALLED_AE, calling, address, f"called AE {called!r} is not {self.settings.ae_title!r}"
            )
            return
        allow_list = self.allow_list()
        if allow_list is None:
            self._reject(assoc, REJECT_CONGESTION, calling, address, "index unavailable", record=False)
            return
        site = match_calling_site(allow_list.site_aes, calling, address)
        node = match_calling_node(allow_list.nodes, calling, address) if site is None else None
        if site is not None:
            caller = Caller.from_site(site, address)
        elif node is not None:
            caller = Caller.from_node(node, address)
        else:
            self._reject(
                assoc,
                REJECT_CALLING_AE,
                calling,
                address,
                "calling AE title and source address match no site AE or DICOM node "
                "(see `yunying ae list`, `yunying node list`)",
            )
            return
        identity = peer_identity(assoc.dul.socket.socket if assoc.dul.socket else None)
        if identity is not None:  # on the TLS port: the certificate must be this AE's (and site's)
            common_name, unit = identity
            site_name = site.site_name if site is not None else None
            if common_name != calling or (site_name is not None and unit and unit != site_name):
                self._reject(
                    assoc,
                    REJECT_CALLING_AE,
                    calling,
                    address,
                    f"the TLS certificate is for AE {common_name!r} of {unit or 'no site'!r}, not this calling AE "
                    "(`yunying pki issue-site` makes one per AE)",
                )
                return
        with self._lock:
            active = self._per_address.get(address, 0)
            if active >= self.settings.max_associations_per_address:
                over = True
            else:
                over = False
                self._per_address[address] = active + 1
                self._states[id(assoc)] = AssociationState(caller=caller, address=address)
        if over:
            self._reject(
                assoc,
                REJECT_LOCAL_LIMIT,
                calling,
                address,
                f"{active} associations already open from this address "
                f"(limit {self.settings.max_associations_per_address})",
                record=False,
            )
            return
        ASSOCIATIONS.labels("accepted").inc()
        OPEN_ASSOCIATIONS.inc()
        log.info(
            "association.accepted",
            calling_ae=calling,
            source=address,
            site=site.site_name if site else None,
            node=node.ae_title if node else None,
        )

    def caller_of(self, assoc: Any) -> Caller | None:
        """Who holds ``assoc``; ``None`` for an association this SCP did not admit."""
        state = self._states.get(id(assoc))
        return state.caller if state is not None else None

    def allow_list(self) -> AllowList | None:
        """Site AEs and DICOM nodes, re-read when older than ``ae_cache_s``; the stale copy while
        the index is down; ``None`` when it never could be read."""
        now = time.monotonic()
        with self._lock:
            cached, loaded_at = self._ae_cache
        if cached is not None and now - loaded_at < self.settings.ae_cache_s:
            return cached
        try:
            with transaction(self.sessions) as session:
                fresh = AllowList(load_site_aes(session), load_nodes(session))
        except IndexUnavailable as exc:
            log.warning("association.allow_list_stale", error=str(exc), cached=cached is not None)
            return cached
        with self._lock:
            self._ae_cache = (fresh, now)
        return fresh

    def _reject(
        self, assoc: Any, reason: tuple[int, int, int], calling: str, address: str, why: str, *, record: bool = True
    ) -> None:
        ASSOCIATIONS.labels("rejected").inc()
        log.warning("association.rejected", calling_ae=calling, source=address, reason=why, code=reason)
        if record:  # before the reject leaves, so whoever sees the reject can also see the change
            try:
                with transaction(self.sessions) as session:
                    append_change(
                        session,
                        events.ASSOCIATION_REJECTED,
                        calling_ae=calling,
                        source=address,
                        reason=why,
                        result=reason[0],
                        diagnostic=reason[2],
                    )
            except IndexUnavailable:
                pass
        assoc.acse.send_reject(*reason)
        # FIELD-NOTES: without kill() the socket closed before the A-ASSOCIATE-RJ left.
        assoc.kill()

    def on_closed(self, event: evt.Event) -> None:
        _discard_partial_data_set(event.assoc)
        with self._lock:
            state = self._states.pop(id(event.assoc), None)
            if state is not None:
                OPEN_ASSOCIATIONS.dec()
                remaining = self._per_address.get(state.address, 1) - 1
                if remaining > 0:
                    self._per_address[state.address] = remaining
                else:
                    self._per_address.pop(state.address, None)

    def on_c_echo(self, event: evt.Event) -> int:
        return SUCCESS

    def on_c_store(self, event: evt.Event) -> Any:
        state = self._states.get(id(event.assoc))
        if state is None:  # cannot happen after on_requested admitted the association
            return status_dataset(OUT_OF_RESOURCES, "association not admitted")
        site = state.caller.site
        if site is None:  # a DICOM node queries and retrieves; only site AEs store
            return status_dataset(NOT_AUTHORISED, "this AE may not store here; only site AEs may")
        spooled = getattr(event.request, "_dataset_file", None)
        if isinstance(spooled, SpoolFile) and spooled.failed is not None:
            return status_dataset(
                OUT_OF_RESOURCES, f"the receiver could not write the data set ({spooled.failed.strerror}); resend later"
            )
        path = Path(event.dataset_path)
        state.instances += 1
        state.bytes += path.stat().st_size
        if state.instances > self.settings.max_instances_per_association:
            return status_dataset(OUT_OF_RESOURCES, "instance limit of this association reached; open a new one")
        if state.bytes > self.settings.max_bytes_per_association:
            return status_dataset(OUT_OF_RESOURCES, "byte limit of this association reached; open a new one")
        request = cast(C_STORE, event.request)
        outcome = self.ingest.receive(
            path,
            Origin(
                site_id=site.site_id,
                calling_ae=site.ae_title,
                source_address=state.address,
                assumed_charset=site.assumed_charset,
                expected_sop_instance_uid=str(request.AffectedSOPInstanceUID or "") or None,
                expected_sop_class_uid=str(request.AffectedSOPClassUID or "") or None,
            ),
        )
        status = c_store_status(outcome)
        if outcome.kind is OutcomeKind.UNAVAILABLE:
            state.instances -= 1
        return status_dataset(status, outcome.reason)


def _discard_partial_data_set(assoc: Any) -> None:
    """An association that died in the middle of a data set (a line cut, an abort) leaves
    pynetdicom's half-written spool file open (FIELD-NOTES): close and delete it now rather than
    leak the descriptor until the partial-file sweep."""
    message = getattr(getattr(assoc, "dimse", None), "message", None)
    spooled = getattr(message, "_data_set_file", None)
    if spooled is None:
        return
    try:
        spooled.close()
        Path(spooled.name).unlink(missing_ok=True)
    except OSError as exc:
        log.warning("receiver.partial_discard_failed", path=str(getattr(spooled, "name", "")), error=str(exc))
    else:
        log.info("receiver.partial_data_set_discarded", path=spooled.name)
