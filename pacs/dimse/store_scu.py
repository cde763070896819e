"""Sending instances to another AE by C-STORE: files (demo pushes now; report delivery and the
clinic edge later), and stored instances as the sub-operations of C-MOVE and C-GET."""

from __future__ import annotations

import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Final, cast

import pydicom
import structlog
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.presentation import PresentationContext

from pacs.dimse.reactor import ReactiveAssociation
from pacs.storage import BlobStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SendResult:
    path: Path
    status: int | None  # None: no response (association lost)
    comment: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 0x0000


class AssociationRefused(Exception):
    """The peer rejected or aborted the association; the message says which."""


def send_files(
    paths: Sequence[Path],
    *,
    host: str,
    port: int,
    called_ae: str,
    calling_ae: str,
    timeout_s: float = 30.0,
    on_sent: Callable[[SendResult], None] | None = None,
) -> list[SendResult]:
    """C-STORE every file over one association, proposing each file's own transfer syntax.

    Raises ``AssociationRefused`` when no association can be established.
    """
    metas = [(path, pydicom.dcmread(path, stop_before_pixels=True)) for path in paths]
    pairs = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for _, ds in metas})
    if len(pairs) > 128:  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1–255
        raise ValueError("more than 128 SOP class / transfer syntax pairs in one send; split the batch")
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.maximum_pdu_size = 1_048_576
    for sop_class, syntax in pairs:
        ae.add_requested_context(sop_class, [syntax])
    assoc = ae.associate(host, port, ae_title=called_ae)
    if not assoc.is_established:
        if assoc.is_rejected and assoc.acceptor.primitive is not None:
            primitive = assoc.acceptor.primitive
            raise AssociationRefused(
                f"{called_ae}@{host}:{port} rejected {calling_ae}: result {primitive.result}, "
                f"source {primitive.result_source}, reason {primitive.diagnostic}"
            )
        raise AssociationRefused(f"no association with {called_ae}@{host}:{port} (aborted or unreachable)")
    results: list[SendResult] = []
    try:
        for path, _ in metas:
            response = assoc.send_c_store(path)
            status = int(response.Status) if "Status" in response else None
            result = SendResult(path, status, str(response.get("ErrorComment", "")))
            results.append(result)
            if on_sent:
                on_sent(result)
            if not assoc.is_established:
                break
    finally:
        if assoc.is_established:
            assoc.release()
    results.extend(SendResult(path, None, "association lost") for path, _ in metas[len(results) :])
    return results


@dataclass(frozen=True)
class DatasetResult:
    sop_instance_uid: str
    status: int | None  # None: no response (association lost)
    comment: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 0x0000


def send_datasets(
    datasets: Sequence[Dataset],
    *,
    host: str,
    port: int,
    called_ae: str,
    calling_ae: str,
    timeout_s: float = 15.0,
) -> list[DatasetResult]:
    """C-STORE data sets built in memory (signed reports going back to a site) over one
    association, each in the transfer syntax of its file meta. Raises ``AssociationRefused``
    when no association can be established or a SOP class is not accepted."""
    pairs = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets})
    # pynetdicom 3.0.4 drops the socket of a refused connection without closing it (a leaked
    # descriptor per retry of a dead site); a plain connect first answers "down" cleanly.
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise AssociationRefused(f"{called_ae}@{host}:{port} unreachable: {exc}") from None
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout_s
    ae.maximum_pdu_size = 1_048_576
    for sop_class, syntax in pairs:
        ae.add_requested_context(sop_class, [syntax])
    assoc = ae.associate(host, port, ae_title=called_ae, evt_handlers=[(evt.EVT_CONN_OPEN, _no_delay)])
    if not assoc.is_established:
        if assoc.is_rejected and assoc.acceptor.primitive is not None:
            primitive = assoc.acceptor.primitive
            raise AssociationRefused(
                f"{called_ae}@{host}:{port} rejected {calling_ae}: result {primitive.result}, "
                f"source {primitive.result_source}, reason {primitive.diagnostic}"
            )
        raise AssociationRefused(f"no association with {called_ae}@{host}:{port} (aborted or unreachable)")
    results: list[DatasetResult] = []
    try:
        accepted = {(str(c.abstract_syntax), str(c.transfer_syntax[0])) for c in assoc.accepted_contexts}
        refused = [pair for pair in pairs if pair not in accepted]
        if refused:
            raise AssociationRefused(
                f"{called_ae} accepted no presentation context for SOP class {refused[0][0]} in {refused[0][1]}"
            )
        for dataset in datasets:
            response = assoc.send_c_store(dataset)
            status = int(response.Status) if "Status" in response else None
            results.append(DatasetResult(str(dataset.SOPInstanceUID), status, str(response.get("ErrorComment", ""))))
            if not assoc.is_established:
                break
    finally:
        if assoc.is_established:
            assoc.release()
    results.extend(DatasetResult(str(ds.SOPInstanceUID), None, "association lost") for ds in datasets[len(results) :])
    return results


# ---------------------------------------------------------------- C-STORE sub-operations of C-MOVE / C-GET

# Conversion between these needs no codec: an instance stored in one of them may be re-encoded
# in another when a destination accepts no context in the stored syntax.
UNCOMPRESSED: Final = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian)


class SyntaxNotAccepted(ValueError):
    """The peer accepted no context for an instance's SOP class in its stored transfer syntax,
    and the stored syntax is compressed, so it cannot be converted without decoding."""


@dataclass(frozen=True)
class ObjectSource:
    """Where the bytes of stored instances come from, and where they are spooled to be sent."""

    store: BlobStore
    spool_dir: Path


class StoredInstance(Dataset):
    """A stored instance to send as one C-STORE sub-operation of a C-MOVE or C-GET.

    A ``Dataset`` only because pynetdicom's Q/R SCPs accept nothing else from a handler; it
    carries just the UIDs they log and list as failed. ``RetrieveAssociation.send_c_store``
    sends the stored bytes themselves, never a re-encoding of this object.
    """

    def __init__(
        self,
        *,
        sop_class_uid: str,
        sop_instance_uid: str,
        transfer_syntax_uid: str,
        object_key: str,
        dataset_offset: int,
        source: ObjectSource,
        on_result: Callable[[StoredInstance, int | None], None],
    ) -> None:
        super().__init__()
        self.SOPClassUID = sop_class_uid
        self.SOPInstanceUID = sop_instance_uid
        self.stored_syntax = UID(transfer_syntax_uid)
        self.object_key = object_key
        self.dataset_offset = dataset_offset
        self.source = source
        self.on_result = on_result


@contextmanager
def _spooled(instance: StoredInstance) -> Iterator[Path]:
    """The stored object in a temporary file, streamed from the store chunk by chunk (an
    instance is never held whole in memory); pynetdicom sends a file from an offset."""
    instance.source.spool_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=instance.source.spool_dir, prefix="tx-", suffix=".dcm") as handle:
        for chunk in instance.source.store.open_stream(instance.object_key):
            handle.write(chunk)
        handle.flush()
        yield Path(handle.name)


def _context(assoc: Association, sop_class: str, syntax: str) -> PresentationContext | None:
    for context in assoc.accepted_contexts:
        if context.abstract_syntax == sop_class and context.transfer_syntax[0] == syntax and context.as_scu:
            return context
    return None


def send_stored(
    assoc: Association,
    instance: StoredInstance,
    *,
    msg_id: int,
    priority: int = 2,
    originator_aet: str | None = None,
    originator_id: int | None = None,
) -> Dataset:
    """C-STORE one stored instance: its data set bytes exactly as stored when the peer accepted
    the stored transfer syntax; re-encoded when both are uncompressed syntaxes; otherwise
    ``SyntaxNotAccepted``. Returns the response status data set (empty: no response).

    Raises ``StoreUnavailable`` when the object cannot be read from the store.
    """
    sop_class = str(instance.SOPClassUID)
    exact = _context(assoc, sop_class, instance.stored_syntax)
    fallback = None
    if exact is None and instance.stored_syntax in UNCOMPRESSED:
        candidates = (_context(assoc, sop_class, syntax) for syntax in UNCOMPRESSED)
        fallback = next((c for c in candidates if c is not None), None)
    context = exact if exact is not None else fallback  # a PresentationContext is falsy
    if context is None:
        raise SyntaxNotAccepted(
            f"the peer accepted {sop_class} in no syntax this instance can be sent in "
            f"(stored as {instance.stored_syntax.name})"
        )
    request = C_STORE()
    request.MessageID = msg_id
    request.Priority = priority
    request.MoveOriginatorApplicationEntityTitle = originator_aet
    request.MoveOriginatorMessageID = originator_id
    request.AffectedSOPClassUID = sop_class
    request.AffectedSOPInstanceUID = str(instance.SOPInstanceUID)
    with _spooled(instance) as path:
        if context is exact:
            request._dataset_path = (path, instance.dataset_offset)  # pynetdicom streams the file from there
        else:
            syntax = context.transfer_syntax[0]
            encoded = encode(dcmread(path), syntax.is_implicit_VR, syntax.is_little_endian, False)
            if encoded is None:
                raise SyntaxNotAccepted(f"the instance could not be re-encoded as {syntax.name}")
            request.DataSet = BytesIO(encoded)
        return _exchange(assoc, request, int(cast(int, context.context_id)))


def send_encoded(
    assoc: Association,
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax_uid: str,
    dataset: bytes,
    msg_id: int,
) -> Dataset:
    """C-STORE a data set already encoded in ``transfer_syntax_uid`` (a copy made for this send,
    such as the edge's JPEG-LS one), on the context accepted for exactly that syntax. Returns
    the response status data set (empty: no response); ``SyntaxNotAccepted`` when there is no
    such context."""
    context = _context(assoc, sop_class_uid, transfer_syntax_uid)
    if context is None:
        raise SyntaxNotAccepted(f"the peer accepted {sop_class_uid} in no context for {transfer_syntax_uid}")
    request = C_STORE()
    request.MessageID = msg_id
    request.Priority = 2
    request.AffectedSOPClassUID = sop_class_uid
    request.AffectedSOPInstanceUID = sop_instance_uid
    request.DataSet = BytesIO(dataset)
    return _exchange(assoc, request, int(cast(int, context.context_id)))


def _exchange(assoc: Association, request: C_STORE, context_id: int) -> Dataset:
    """Send a C-STORE request and wait for its response, as pynetdicom 3.0.4's own
    ``send_c_store`` does (pinned): the reactor is paused so it cannot take the response."""
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.0001)
    try:
        assoc.dimse.send_msg(request, context_id)
        _, response = assoc.dimse.get_msg(block=True)
    finally:
        assoc._reactor_checkpoint.set()
    if response is None:  # DIMSE timeout
        assoc._handle_no_response()
        return Dataset()
    return assoc._check_received_status(response)


class RetrieveAssociation(ReactiveAssociation):
    """An association that sends a ``StoredInstance`` with ``send_stored`` — pynetdicom's C-MOVE
    and C-GET SCPs call ``send_c_store`` for each instance a handler yields."""

    def send_c_store(
        self,
        dataset: str | Path | Dataset,
        msg_id: int = 1,
        priority: int = 2,
        originator_aet: str | None = None,
        originator_id: int | None = None,
    ) -> Dataset:
        if not isinstance(dataset, StoredInstance):
            return super().send_c_store(dataset, msg_id, priority, originator_aet, originator_id)
        try:
            status = send_stored(
                self,
                dataset,
                msg_id=msg_id,
                priority=priority,
                originator_aet=originator_aet,
                originator_id=originator_id,
            )
        except Exception as exc:
            log.warning("retrieve.sub_operation_failed", sop_instance_uid=str(dataset.SOPInstanceUID), error=str(exc))
            dataset.on_result(dataset, None)
            raise
        dataset.on_result(dataset, int(status.Status) if "Status" in status else None)
        return status


def _no_delay(event: evt.Event) -> None:
    # FIELD-NOTES: without TCP_NODELAY each message waits ~40 ms for Nagle on loopback.
    sock = event.assoc.dul.socket
    if sock is not None and sock.socket is not None:
        sock.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class RetrieveAE(AE):
    """The receiver's AE: the associations it opens (to C-MOVE destinations) set TCP_NODELAY
    and can send ``StoredInstance`` objects."""

    def associate(self, addr: str, port: int, **kwargs: Any) -> Association:  # type: ignore[override]
        kwargs["evt_handlers"] = [*(kwargs.get("evt_handlers") or []), (evt.EVT_CONN_OPEN, _no_delay)]
        assoc = super().associate(addr, port, **kwargs)
        assoc.__class__ = RetrieveAssociation  # adds one method, no state
        return assoc
