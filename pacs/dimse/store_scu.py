"""Sending instances to another AE by C-STORE (demo pushes now; report delivery and the clinic
edge later)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pynetdicom import AE


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
