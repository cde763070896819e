"""The edge as Storage Commitment SCP (PS3.4 Annex J, Push Model) for the clinic's modalities:
a modality asks (N-ACTION) whether the edge has taken responsibility for the instances it sent,
and may delete its own copies once told so (N-EVENT-REPORT). The edge commits an instance it
holds in its index — durably stored, queued for the centre, and kept until the centre
acknowledged it and the retention period passed (pacs/edge/prune.py).

The report goes back on the association of the request (J.3.3.1): the modality must keep it
open until the report arrives (most offer "wait for commitment on the same association"); the
edge does not open associations to modalities, whose addresses it does not know.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Final, cast

import structlog
from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.dimse_primitives import N_ACTION
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pacs.dimse.store_scp import StoreSCP
from pacs.index.db import IndexUnavailable, transaction
from pacs.index.models import Instance

log = structlog.get_logger(__name__)

PUSH_MODEL: Final = "1.2.840.10008.1.20.1"
PUSH_MODEL_INSTANCE: Final = "1.2.840.10008.1.20.1.1"  # PS3.4 J.3.5: the well-known SOP instance
REQUEST_COMMIT: Final = 1  # Action Type ID (J.3.2)
ALL_COMMITTED: Final = 1  # Event Type ID: storage commitment request successful
SOME_FAILED: Final = 2  # Event Type ID: complete, failures exist
NO_SUCH_INSTANCE: Final = 0x0112  # Failure Reason (PS3.4 J.3.3.1.2)
CLASS_INSTANCE_CONFLICT: Final = 0x0119
NOT_AUTHORISED: Final = 0x0124
PROCESSING_FAILURE: Final = 0x0110


def _reference(sop_class: str, sop_instance: str, failure: int | None = None) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    if failure is not None:
        item.FailureReason = failure
    return item


def commitment_report(sessions: sessionmaker[Session], request: Dataset) -> tuple[int, Dataset]:
    """The Event Type ID and Event Information answering a commitment request."""
    wanted = [
        (str(item.get("ReferencedSOPClassUID", "")), str(item.get("ReferencedSOPInstanceUID", "")))
        for item in request.get("ReferencedSOPSequence", [])
    ]
    with transaction(sessions, read_only=True) as session:
        held = dict(
            session.execute(
                select(Instance.sop_instance_uid, Instance.sop_class_uid).where(
                    Instance.sop_instance_uid.in_([uid for _, uid in wanted]), Instance.is_current.is_(True)
                )
            ).all()
        )
    committed, failed = [], []
    for sop_class, sop_instance in wanted:
        if sop_instance not in held:
            failed.append(_reference(sop_class, sop_instance, NO_SUCH_INSTANCE))
        elif held[sop_instance] != sop_class:
            failed.append(_reference(sop_class, sop_instance, CLASS_INSTANCE_CONFLICT))
        else:
            committed.append(_reference(sop_class, sop_instance))
    report = Dataset()
    report.TransactionUID = request.TransactionUID
    if committed:
        report.ReferencedSOPSequence = committed
    if failed:
        report.FailedSOPSequence = failed
    return (SOME_FAILED if failed else ALL_COMMITTED), report


class CommitmentSCP:
    """Bound to the edge's receiver beside its store SCP, which admits the association."""

    def __init__(self, sessions: sessionmaker[Session], store_scp: StoreSCP) -> None:
        self.sessions = sessions
        self.store_scp = store_scp

    def handlers(self) -> list[tuple[Any, Any]]:
        return [(evt.EVT_N_ACTION, self.on_n_action)]

    def on_n_action(self, event: evt.Event) -> tuple[int, Dataset | None]:
        caller = self.store_scp.caller_of(event.assoc)
        if caller is None or caller.site is None:
            return NOT_AUTHORISED, None
        primitive = cast(N_ACTION, event.request)
        if primitive.ActionTypeID != REQUEST_COMMIT:
            return 0x0123, None  # No such action type (PS3.7 C.5.11)
        try:
            request = event.action_information
            _ = request.TransactionUID
        except (AttributeError, ValueError):
            return PROCESSING_FAILURE, None
        # The report must follow the N-ACTION response, which the association's reactor sends
        # after this handler returns; send_n_event_report pauses that reactor, so another thread.
        threading.Thread(target=self._report, args=(event.assoc, request), name="edge-commitment", daemon=True).start()
        return 0x0000, None

    def _report(self, assoc: Any, request: Dataset) -> None:
        time.sleep(0.05)
        try:
            event_type, report = commitment_report(self.sessions, request)
        except IndexUnavailable as exc:
            log.warning("edge.commitment_unavailable", error=str(exc))
            return  # no report: the modality asks again later (J.3.3: the SCU may re-request)
        if not assoc.is_established:
            log.warning("edge.commitment_association_gone", transaction_uid=str(request.TransactionUID))
            return
        status, _ = assoc.send_n_event_report(report, event_type, PUSH_MODEL, PUSH_MODEL_INSTANCE)
        log.info(
            "edge.commitment_reported",
            transaction_uid=str(request.TransactionUID),
            committed=len(report.get("ReferencedSOPSequence", [])),
            failed=len(report.get("FailedSOPSequence", [])),
            status=getattr(status, "Status", None),
        )
