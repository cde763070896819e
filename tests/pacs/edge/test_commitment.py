"""The edge as Storage Commitment SCP (PS3.4 Annex J) for the clinic's modality: a pynetdicom SCU
asks after what it sent with storescu (and one instance it never sent) and gets the report on
the same association."""

from __future__ import annotations

import queue
from collections.abc import Callable
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt

from tests.conftest import storescu
from tests.pacs.edge.conftest import EDGE_AE, MODALITY_AE, Centre, EdgeProcess
from tests.pacs.helpers import write_ct

PUSH_MODEL = "1.2.840.10008.1.20.1"


def ask_commitment(
    port: int, references: list[tuple[str, str]], calling: str = MODALITY_AE
) -> tuple[int, Dataset | None, int]:
    """N-ACTION from ``calling``; returns (N-ACTION status, the report, its event type) — the
    report ``None`` when none came within 15 s."""
    reports: queue.Queue[tuple[int, Dataset]] = queue.Queue()

    def on_report(event: evt.Event) -> tuple[int, None]:
        reports.put((int(event.request.EventTypeID), event.event_information))
        return 0x0000, None

    ae = AE(ae_title=calling)
    ae.add_requested_context(PUSH_MODEL)
    assoc = ae.associate("127.0.0.1", port, ae_title=EDGE_AE, evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
    if not assoc.is_established:
        return -1, None, 0
    request = Dataset()
    request.TransactionUID = generate_uid()
    request.ReferencedSOPSequence = []
    for sop_class, sop_instance in references:
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = sop_instance
        request.ReferencedSOPSequence.append(item)
    status, _ = assoc.send_n_action(request, 1, PUSH_MODEL, "1.2.840.10008.1.20.1.1")
    try:
        event_type, report = reports.get(timeout=15)
    except queue.Empty:
        event_type, report = 0, None
    assoc.release()
    assert report is None or report.TransactionUID == request.TransactionUID
    return int(status.Status), report, event_type


def test_the_edge_commits_what_it_holds_and_names_what_it_does_not(
    centre: Centre, make_edge: Callable[..., EdgeProcess], data_cache: Path
) -> None:
    edge = make_edge(centre)
    files = write_ct(data_cache / "edge-forward-5", slices=5, seed=31, size=64)
    assert storescu(edge.port, files, calling=MODALITY_AE, called=EDGE_AE)[0] == 5
    sent = [
        (str(ds.SOPClassUID), str(ds.SOPInstanceUID))
        for ds in (pydicom.dcmread(f, stop_before_pixels=True) for f in files)
    ]
    never_sent = (sent[0][0], generate_uid())

    status, report, event_type = ask_commitment(edge.port, sent)
    assert status == 0 and report is not None and event_type == 1
    assert sorted(i.ReferencedSOPInstanceUID for i in report.ReferencedSOPSequence) == sorted(u for _, u in sent)

    status, report, event_type = ask_commitment(edge.port, [*sent[:2], never_sent])
    assert status == 0 and report is not None and event_type == 2
    [failed] = report.FailedSOPSequence
    assert (failed.ReferencedSOPInstanceUID, failed.FailureReason) == (never_sent[1], 0x0112)
    assert len(report.ReferencedSOPSequence) == 2


def test_a_modality_not_on_the_allow_list_gets_no_commitment(
    centre: Centre, make_edge: Callable[..., EdgeProcess]
) -> None:
    edge = make_edge(centre)
    status, report, _ = ask_commitment(edge.port, [(PUSH_MODEL, generate_uid())], calling="INTRUDER")
    assert status == -1 and report is None  # the association itself is rejected
