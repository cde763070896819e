"""How one stored instance travels to the centre: by DICOM C-STORE (``DicomLink``, TLS when
configured) or HTTPS STOW-RS (``StowLink``). Both send the bytes exactly as stored (the data set
after group 0002 is what the centre hashes) — or, with ``transit_compression``, a JPEG-LS
Lossless copy checked to decode to them (pacs/edge/compression.py), falling back to the stored
bytes whenever the copy cannot be made or the centre does not take it. Both answer a ``Sent`` —
never raise for anything the network or the centre does."""

from __future__ import annotations

import socket
import ssl
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import structlog
from pydicom.uid import UID, ExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.transport import AssociationSocket

from pacs.dimse.store_scu import ObjectSource, StoredInstance, SyntaxNotAccepted, send_encoded, send_stored
from pacs.edge.centre import CentreApi, CentreRefused, CentreUnreachable
from pacs.edge.compression import TRANSIT_SYNTAX, Compressed, Kept, compress_for_transit
from pacs.edge.settings import EdgeSettings, TransitCompression
from pacs.edge.throttle import SLICE, RateLimiter
from pacs.storage import BlobStore, StoreUnavailable

log = structlog.get_logger(__name__)


class SentKind(StrEnum):
    ACKNOWLEDGED = "acknowledged"  # the centre answered Success (or a warning: stored)
    REFUSED = "refused"  # the centre refused it for good: the reason says why
    RETRY = "retry"  # the link or the centre is down or busy: try again later


@dataclass(frozen=True)
class Sent:
    kind: SentKind
    reason: str = ""
    transfer_syntax: str = ""  # acknowledged: the syntax that went on the wire
    size: int = 0  # acknowledged: bytes sent (the data set by C-STORE, the Part-10 file by STOW)


@dataclass(frozen=True)
class Outgoing:
    """One stored instance to forward, as the edge's index holds it."""

    study_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    object_key: str
    dataset_offset: int
    size: int = 0  # of the stored Part-10 file


class Link(Protocol):
    def send(self, instance: Outgoing) -> Sent: ...

    def close(self) -> None: ...


def classify_status(status: int | None, comment: str) -> Sent:
    """PS3.4 B.2.3: Success and warnings (0xB000, 0xB006, 0xB007) mean stored; 0xA7xx
    "out of resources" and no answer mean try again; any other failure is a refusal."""
    if status is None:
        return Sent(SentKind.RETRY, "no C-STORE response (association lost or DIMSE timeout)")
    if status == 0x0000 or 0xB000 <= status <= 0xBFFF:
        return Sent(SentKind.ACKNOWLEDGED)
    words = f"centre answered 0x{status:04X}" + (f": {comment}" if comment else "")
    if 0xA700 <= status <= 0xA7FF:
        return Sent(SentKind.RETRY, words)
    return Sent(SentKind.REFUSED, words)


def transit_copy(compression: TransitCompression, instance: Outgoing, original: bytes) -> Compressed | None:
    """The JPEG-LS Lossless copy to send instead of ``original``, or ``None`` (logged why) to send
    ``original`` as stored."""
    if compression is TransitCompression.NONE:
        return None
    result = compress_for_transit(original)
    if isinstance(result, Kept):
        log.info(
            "edge.sent_as_stored",
            study_uid=instance.study_uid,
            sop_instance_uid=instance.sop_instance_uid,
            reason=result.reason,
        )
        return None
    return result


def _compressible(compression: TransitCompression, instance: Outgoing) -> bool:
    """Whether to try a compressed copy; compression.py keeps any stored syntax but Explicit VR
    Little Endian as stored, so no context is proposed for one (logged why)."""
    if compression is TransitCompression.NONE:
        return False
    if instance.transfer_syntax_uid != ExplicitVRLittleEndian:
        log.info(
            "edge.sent_as_stored",
            study_uid=instance.study_uid,
            sop_instance_uid=instance.sop_instance_uid,
            reason=f"stored as {UID(instance.transfer_syntax_uid).name}, not Explicit VR Little Endian",
        )
        return False
    return True


# ---------------------------------------------------------------- DICOM


class _ThrottledSocket(AssociationSocket):
    """pynetdicom's socket with each PDU paced through the edge's bandwidth cap."""

    limiter: RateLimiter

    def send(self, bytestream: bytes) -> None:
        for start in range(0, len(bytestream), SLICE):
            self.limiter.take(min(SLICE, len(bytestream) - start))
        super().send(bytestream)


class DicomLink:
    """One association to the centre, kept open while there is work and released when idle."""

    def __init__(self, settings: EdgeSettings, store: BlobStore, limiter: RateLimiter) -> None:
        self.settings = settings
        self.limiter = limiter
        self.source = ObjectSource(store, (settings.home / "outgoing").resolve())
        self.assoc: Association | None = None
        self.contexts: set[tuple[str, str]] = set()
        self.wanted: set[tuple[str, str]] = set()
        self.proposed: set[tuple[str, str]] = set()  # by the association now open
        self._msg_id = 0
        self._tls: ssl.SSLContext | None = self._tls_context() if settings.centre_tls else None

    def _tls_context(self) -> ssl.SSLContext:
        folder = self.settings.pki_path
        ae = self.settings.calling_ae
        for name in ("ca.pem", f"{ae}.pem", f"{ae}.key"):
            if not (folder / name).exists():
                raise FileNotFoundError(
                    f"DICOM TLS to the centre needs {folder / name}: copy ca.pem and the certificate the centre "
                    f"issued with `yunying pki issue-site {ae} --site …` into {folder}"
                )
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(folder / "ca.pem"))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(folder / f"{ae}.pem"), str(folder / f"{ae}.key"))
        return context

    def _on_open(self, event: evt.Event) -> None:
        sock = event.assoc.dul.socket
        if sock is None or sock.socket is None:
            return
        # FIELD-NOTES: without TCP_NODELAY each message waits ~40 ms for Nagle.
        sock.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.limiter.capped:
            sock.__class__ = _ThrottledSocket
            sock.limiter = self.limiter  # type: ignore[attr-defined]

    def _open(self) -> Sent | None:
        settings = self.settings
        host, port = settings.centre_host, settings.centre_port
        # pynetdicom 3.0.4 leaks the socket of a refused connection; a plain connect answers first.
        try:
            socket.create_connection((host, port), timeout=settings.connect_timeout_s).close()
        except OSError as exc:
            return Sent(SentKind.RETRY, f"centre {host}:{port} unreachable: {exc}")
        ae = AE(ae_title=settings.calling_ae)
        ae.acse_timeout = ae.connection_timeout = settings.connect_timeout_s
        ae.dimse_timeout = settings.dimse_timeout_s
        # The association waits idle between studies until idle_release_s; pynetdicom aborts it
        # after network_timeout without traffic.
        ae.network_timeout = max(settings.dimse_timeout_s, 2 * settings.idle_release_s)
        ae.maximum_pdu_size = settings.max_pdu
        proposed = sorted(self.wanted)[:128]  # PS3.8 9.3.2.2: at most 128 contexts
        for sop_class, syntax in proposed:
            ae.add_requested_context(sop_class, [syntax])
        kwargs: dict[str, Any] = {"evt_handlers": [(evt.EVT_CONN_OPEN, self._on_open)]}
        if self._tls is not None:
            kwargs["tls_args"] = (self._tls, host)
        assoc = ae.associate(host, port, ae_title=settings.centre_ae_title, **kwargs)
        if not assoc.is_established:
            if assoc.is_rejected and assoc.acceptor.primitive is not None:
                primitive = assoc.acceptor.primitive
                why = (
                    f"centre {settings.centre_ae_title}@{host}:{port} rejected {settings.calling_ae} "
                    f"(result {primitive.result}, source {primitive.result_source}, reason {primitive.diagnostic}): "
                    "is this edge's AE title and address configured at the centre (`yunying ae add`)?"
                )
                transient = primitive.result == 0x02  # rejected-transient (congestion, a limit)
                return Sent(SentKind.RETRY if transient else SentKind.REFUSED, why)
            return Sent(SentKind.RETRY, f"no association with the centre at {host}:{port} (aborted or timed out)")
        self.assoc = assoc
        self.proposed = set(proposed)
        self.contexts = {(str(c.abstract_syntax), str(c.transfer_syntax[0])) for c in assoc.accepted_contexts}
        refused = sorted(sop for sop, syntax in self.proposed - self.contexts if syntax == TRANSIT_SYNTAX)
        if refused:
            log.info(
                "edge.sent_as_stored",
                reason="the centre accepted no JPEG-LS Lossless context; sending as stored",
                sop_classes=refused,
            )
        return None

    def send(self, instance: Outgoing) -> Sent:
        pair = (instance.sop_class_uid, instance.transfer_syntax_uid)
        needed = {pair}
        transit = (instance.sop_class_uid, str(TRANSIT_SYNTAX))
        compressible = _compressible(self.settings.transit_compression, instance)
        if compressible:
            needed.add(transit)  # proposed beside the stored syntax: a refusal costs no new association
        if self.assoc is not None and (not self.assoc.is_established or not needed <= self.proposed):
            self.close()
        if self.assoc is None:
            self.wanted |= needed
            failed = self._open()
            if failed is not None:
                return failed
        assert self.assoc is not None
        if compressible and transit in self.contexts:
            sent = self._send_compressed(instance)
            if sent is not None:
                return sent
        if pair not in self.contexts:
            return Sent(
                SentKind.REFUSED,
                f"the centre accepts SOP class {instance.sop_class_uid} in no context for "
                f"transfer syntax {instance.transfer_syntax_uid}",
            )
        self._msg_id = self._msg_id % 65535 + 1
        stored = StoredInstance(
            sop_class_uid=instance.sop_class_uid,
            sop_instance_uid=instance.sop_instance_uid,
            transfer_syntax_uid=instance.transfer_syntax_uid,
            object_key=instance.object_key,
            dataset_offset=instance.dataset_offset,
            source=self.source,
            on_result=lambda *_: None,
        )
        try:
            response = send_stored(self.assoc, stored, msg_id=self._msg_id)
        except SyntaxNotAccepted as exc:
            return Sent(SentKind.REFUSED, str(exc))
        except StoreUnavailable as exc:
            return Sent(SentKind.RETRY, f"cannot read the local copy: {exc}")
        except Exception as exc:  # noqa: BLE001 — a dying association raises all sorts; the job must come back
            self.close()
            return Sent(SentKind.RETRY, f"link lost: {type(exc).__name__}: {exc}")
        return self._answer(response, instance.transfer_syntax_uid, instance.size - instance.dataset_offset)

    def _send_compressed(self, instance: Outgoing) -> Sent | None:
        """C-STORE the JPEG-LS copy; ``None`` to send the stored bytes instead (no copy could be
        made, or the centre refused the copy itself)."""
        assert self.assoc is not None
        try:
            original = self.source.store.get(instance.object_key)
        except StoreUnavailable as exc:
            return Sent(SentKind.RETRY, f"cannot read the local copy: {exc}")
        copy = transit_copy(self.settings.transit_compression, instance, original)
        if copy is None:
            return None
        self._msg_id = self._msg_id % 65535 + 1
        try:
            response = send_encoded(
                self.assoc,
                sop_class_uid=instance.sop_class_uid,
                sop_instance_uid=instance.sop_instance_uid,
                transfer_syntax_uid=str(TRANSIT_SYNTAX),
                dataset=copy.dataset,
                msg_id=self._msg_id,
            )
        except Exception as exc:  # noqa: BLE001 — a dying association raises all sorts; the job must come back
            self.close()
            return Sent(SentKind.RETRY, f"link lost: {type(exc).__name__}: {exc}")
        sent = self._answer(response, str(TRANSIT_SYNTAX), len(copy.dataset))
        if sent.kind is SentKind.REFUSED:
            log.warning(
                "edge.compressed_copy_refused",
                study_uid=instance.study_uid,
                sop_instance_uid=instance.sop_instance_uid,
                reason=sent.reason,
            )
            return None
        return sent

    def _answer(self, response: Any, syntax: str, size: int) -> Sent:
        status = int(response.Status) if "Status" in response else None
        sent = classify_status(status, str(response.get("ErrorComment", "")))
        if sent.kind is SentKind.RETRY:
            self.close()
        if sent.kind is SentKind.ACKNOWLEDGED:
            return Sent(SentKind.ACKNOWLEDGED, transfer_syntax=syntax, size=size)
        return sent

    def close(self) -> None:
        if self.assoc is not None:
            try:
                if self.assoc.is_established:
                    self.assoc.release()
                else:
                    self.assoc.abort()
            except Exception as exc:  # noqa: BLE001 — a dying association may fail either way
                log.debug("edge.association_close_failed", error=str(exc))
        self.assoc = None
        self.contexts = set()
        self.proposed = set()


# ---------------------------------------------------------------- STOW-RS


class StowLink:
    """One STOW-RS request per instance (PS3.18 10.5): a failed request loses at most one
    instance's transfer, and the answer names that instance's fate."""

    def __init__(
        self, api: CentreApi, store: BlobStore, compression: TransitCompression = TransitCompression.NONE
    ) -> None:
        self.api = api
        self.store = store
        self.compression = compression

    def send(self, instance: Outgoing) -> Sent:
        try:
            part = self.store.get(instance.object_key)
        except StoreUnavailable as exc:
            return Sent(SentKind.RETRY, f"cannot read the local copy: {exc}")
        copy = transit_copy(self.compression, instance, part) if _compressible(self.compression, instance) else None
        if copy is not None:
            sent = self._post(instance, copy.part10, str(TRANSIT_SYNTAX))
            if sent.kind is not SentKind.REFUSED:
                return sent
            log.warning(
                "edge.compressed_copy_refused",
                study_uid=instance.study_uid,
                sop_instance_uid=instance.sop_instance_uid,
                reason=sent.reason,
            )
        return self._post(instance, part, instance.transfer_syntax_uid)

    def _post(self, instance: Outgoing, part: bytes, syntax: str) -> Sent:
        boundary = uuid.uuid4().hex
        head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        body = head + part + f"\r\n--{boundary}--\r\n".encode()
        try:
            response = self.api.request(
                "POST",
                f"/dicomweb/studies/{instance.study_uid}",
                body=body,
                headers={
                    "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                    "Accept": "application/dicom+json",
                },
                expect=(200, 202, 409),
            )
        except CentreUnreachable as exc:
            return Sent(SentKind.RETRY, str(exc))
        except CentreRefused as exc:
            return Sent(SentKind.REFUSED, str(exc))
        if response.status in (200, 202):
            return Sent(SentKind.ACKNOWLEDGED, transfer_syntax=syntax, size=len(part))
        return Sent(SentKind.REFUSED, f"centre refused it (409): {_failure(response.data)}")

    def close(self) -> None:
        pass


def _failure(data: bytes) -> str:
    """The Error Comment of the failed SOP sequence item (PS3.18 I.1)."""
    import json

    try:
        answer = json.loads(data)
        item = answer["00081198"]["Value"][0]
        reason = item.get("00081197", {}).get("Value", [None])[0]
        comment = item.get("00000902", {}).get("Value", [""])[0]
        return f"0x{int(reason):04X} {comment}".strip() if reason is not None else str(comment)
    except (ValueError, KeyError, IndexError, TypeError):
        return data[:200].decode("utf-8", "replace")


def spool_dir(settings: EdgeSettings) -> Path:
    return (settings.home / "outgoing").resolve()
