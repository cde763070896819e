"""Signed reports coming back to the clinic: the edge pulls them over its own outbound HTTPS
connection (the centre cannot reach a clinic behind NAT) with the site token, keeps each as a
folder — ``report.json``, ``report.pdf``, ``report-sr.dcm`` — under ``home/reports``, and only
then acknowledges the delivery, so a crash between fetching and keeping fetches it again.

Centre endpoints used (all of ``/api/site`` and ``/api/reports``, site-scoped by the token):
``GET /api/site/deliveries?state=awaiting_pull``, ``GET /api/reports/{id}[?format=pdf|sr]``,
``POST /api/site/deliveries/{id}/ack``.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from pacs.edge.centre import CentreApi, CentreRefused, CentreUnreachable

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class KeptReport:
    report_id: int
    study_uid: str
    folder: Path
    signed_at: str | None
    impression: str
    patient_name: str | None
    critical: bool

    @property
    def pdf(self) -> Path:
        return self.folder / "report.pdf"

    @property
    def sr(self) -> Path:
        return self.folder / "report-sr.dcm"


def _write_durably(path: Path, content: bytes) -> None:
    """Write beside, fsync, rename: a crash leaves the old file or the new one, never half."""
    partial = path.with_name(path.name + ".part")
    with open(partial, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)


def keep_report(folder: Path, report: dict[str, Any], pdf: bytes, sr: bytes | None) -> Path:
    """Keep one report version; returns its folder. The JSON goes last: it marks the folder whole."""
    target = folder / f"{int(report['id']):08d}"
    target.mkdir(parents=True, exist_ok=True)
    _write_durably(target / "report.pdf", pdf)
    if sr is not None:
        _write_durably(target / "report-sr.dcm", sr)
    _write_durably(target / "report.json", json.dumps(report, ensure_ascii=False, indent=1).encode())
    return target


def kept_reports(folder: Path) -> list[KeptReport]:
    """The reports kept at the edge, newest first."""
    kept = []
    if not folder.exists():
        return []
    for entry in sorted(folder.iterdir(), reverse=True):
        manifest = entry / "report.json"
        if not manifest.exists():
            continue
        report = json.loads(manifest.read_text())
        kept.append(
            KeptReport(
                int(report["id"]),
                str(report.get("study_uid", "")),
                entry,
                report.get("signed_at"),
                str(report.get("impression") or ""),
                report.get("patient_name"),
                bool(report.get("critical")),
            )
        )
    return kept


def pull_reports(api: CentreApi, folder: Path) -> int:
    """Fetch, keep and acknowledge every report awaiting this site; returns how many. Raises
    ``CentreUnreachable`` / ``CentreRefused`` (the caller retries later)."""
    pulled = 0
    for delivery in api.json("GET", "/api/site/deliveries?state=awaiting_pull"):
        report_id = int(delivery["report_id"])
        report = api.json("GET", f"/api/reports/{report_id}")
        pdf = api.request("GET", f"/api/reports/{report_id}?format=pdf", headers={"Accept": "application/pdf"}).data
        try:
            sr: bytes | None = api.request(
                "GET", f"/api/reports/{report_id}?format=sr", headers={"Accept": "application/dicom"}
            ).data
        except CentreRefused:  # a centre of an older release renders no SR: keep the PDF
            sr = None
        keep_report(folder, {**report, "delivery_id": delivery["id"], "study_uid": delivery["study_uid"]}, pdf, sr)
        api.json("POST", f"/api/site/deliveries/{delivery['id']}/ack")
        log.info("edge.report_kept", report_id=report_id, study_uid=delivery.get("study_uid"))
        pulled += 1
    return pulled


class ReportPuller:
    """Polls the centre every ``poll_s`` seconds (and at once when ``wake()`` is called)."""

    def __init__(self, api: CentreApi, folder: Path, poll_s: float) -> None:
        self.api = api
        self.folder = folder
        self.poll_s = poll_s
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edge-reports", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pull_reports(self.api, self.folder)
                self.last_error = None
            except (CentreUnreachable, CentreRefused) as exc:
                if str(exc) != self.last_error:
                    log.warning("edge.reports_unavailable", error=str(exc))
                self.last_error = str(exc)
            except Exception:  # the puller must outlive any one bad answer
                log.exception("edge.reports_failed")
            self._wake.wait(self.poll_s)
            self._wake.clear()
