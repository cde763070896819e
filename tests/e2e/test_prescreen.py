"""Issue C end to end: a township modality pushes (dcmtk ``storescu``) a head CT with a bleed, a
normal head CT, a chest film with a pneumothorax and a normal film to the running service with
the shipped registry (QC, head-ct-ich, chest-dx-triage). Each study turns stable, the in-service
AI worker pre-screens it, the findings carry the expected labels above or below their operating
points, the positives suggest ``stat`` / ``urgent``, the SR and the heat maps come back as new
series through DICOMweb, and the change feed shows ``ai.done``."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from sqlalchemy import select

from ai_models.records import AiFinding
from ai_models.settings import AISettings
from datasets.lesions import chest_film, head_ct
from pacs.identity.sites import add_site, add_site_ae
from pacs.identity.users import add_user, create_token, find_user
from pacs.index.db import transaction
from pacs.index.models import Change
from pacs.service import Services
from reading.settings import ReadingSettings
from tests.conftest import free_port, require, storescu, wait_for
from tests.dicomweb.test_wado import parts
from viewer.serve import EmbeddedService

SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture


@dataclass
class Centre:
    services: Services
    url: str
    token: str

    def get(self, path: str, accept: str = "application/dicom+json") -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": accept}
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=60)


@pytest.fixture
def centre(make_services: Callable[..., Services]) -> Iterator[Centre]:
    require("storescu")
    services = make_services(dicom_port=free_port(), http_port=free_port(), stability_seconds=1.0)
    with transaction(services.sessions) as session:
        site = add_site(session, consortium="Dongtai", name="Fudong", tier="township")
        add_site_ae(session, site=site, ae_title="FUDONG_CT", allowed_address="127.0.0.1")
        add_user(session, username="fudong", role="site", site="Fudong")
        token = create_token(session, find_user(session, "fudong"))[1]
    ai = AISettings(threads=2, model_timeout_s=120, lease_s=300, poll_s=0.2)
    service = EmbeddedService(services, ReadingSettings(reading_ai_timeout_s=600), ai)
    service.start()
    try:
        yield Centre(services, f"http://127.0.0.1:{services.settings.http_port}", token)
    finally:
        service.stop()


def push(centre: Centre, folder: Path, datasets: list[pydicom.Dataset]) -> str:
    folder.mkdir(parents=True)
    files = []
    for n, ds in enumerate(datasets):
        path = folder / f"{n:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    ok, failed, output = storescu(centre.services.settings.dicom_port, files)
    assert (ok, failed) == (len(files), 0), output
    return str(datasets[0].StudyInstanceUID)


def findings_of(centre: Centre, study_uid: str) -> dict[str, AiFinding]:
    with transaction(centre.services.sessions) as session:
        rows = session.scalars(select(AiFinding).where(AiFinding.study_uid == study_uid)).all()
        session.expunge_all()
    return {row.label: row for row in rows}


def changes_of(centre: Centre, study_uid: str) -> list[str]:
    with transaction(centre.services.sessions) as session:
        return list(session.scalars(select(Change.kind).where(Change.study_uid == study_uid).order_by(Change.seq)))


def derived_series(centre: Centre, study_uid: str) -> dict[str, list[dict[str, Any]]]:
    """The study's series by SOP class of their instances, read back through QIDO."""
    found: dict[str, list[dict[str, Any]]] = {}
    for series in centre.get(f"/dicomweb/studies/{study_uid}/series").json():
        series_uid = series["0020000E"]["Value"][0]
        for instance in centre.get(f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances").json():
            found.setdefault(instance["00080016"]["Value"][0], []).append(instance)
    return found


def retrieve(centre: Centre, study_uid: str, instance: dict[str, Any]) -> pydicom.Dataset:
    series_uid, sop_uid = instance["0020000E"]["Value"][0], instance["00080018"]["Value"][0]
    response = centre.get(
        f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}",
        accept='multipart/related; type="application/dicom"; transfer-syntax=*',
    )
    return pydicom.dcmread(io.BytesIO(parts(response)[0][1]))


@pytest.mark.slow
def test_bleeds_and_pneumothoraces_are_flagged_and_their_results_come_back_as_dicom(
    centre: Centre, tmp_path: Path
) -> None:
    studies = {
        "bleed": push(centre, tmp_path / "bleed", head_ct(seed=910_001, haemorrhage=True, slices=24).slices),
        "head": push(centre, tmp_path / "head", head_ct(seed=910_002, haemorrhage=False, slices=24).slices),
        "pneumothorax": push(
            centre, tmp_path / "ptx", [chest_film(seed=910_003, labels=["pneumothorax"], size=1024).dataset]
        ),
        "chest": push(centre, tmp_path / "chest", [chest_film(seed=910_004, size=1024).dataset]),
    }
    for name, uid in studies.items():
        wait_for(lambda uid=uid: "study.ready_for_reading" in changes_of(centre, uid), timeout=240, interval=0.5)
        kinds = changes_of(centre, uid)
        assert "study.stable" in kinds and "ai.done" in kinds, (name, kinds)
        assert "ai.failed" not in kinds, (name, kinds)

    bleed, head = findings_of(centre, studies["bleed"]), findings_of(centre, studies["head"])
    ich = bleed["intracranial_haemorrhage"]
    assert ich.positive and ich.suggested_triage == "stat", ich.explanation
    assert ich.model == "head-ct-ich" and ich.probability is not None and ich.probability >= 0.5
    assert ich.location and ich.location[0]["box"], ich.location  # the top slice, with a box
    assert not head["intracranial_haemorrhage"].positive and head["intracranial_haemorrhage"].suggested_triage is None

    ptx, chest = findings_of(centre, studies["pneumothorax"]), findings_of(centre, studies["chest"])
    assert ptx["pneumothorax"].positive and ptx["pneumothorax"].suggested_triage == "urgent", ptx[
        "pneumothorax"
    ].explanation
    for label in ("nodule", "pleural_effusion", "pneumothorax"):
        assert not chest[label].positive, chest[label].explanation
        assert not ptx[label].positive or label == "pneumothorax", ptx[label].explanation
    # QC ran on every study and found nothing wrong with these.
    for uid in studies.values():
        qc = [f for f in findings_of(centre, uid).values() if f.model == "image-qc"]
        assert qc and not any(f.positive for f in qc), [f.explanation for f in qc if f.positive]

    # Every study gets its SR; positives get a heat map overlay of the image that drove them.
    for name, uid in studies.items():
        series = derived_series(centre, uid)
        assert len(series.get(SR_CLASS, [])) == 1, (name, series.keys())
        sr = retrieve(centre, uid, series[SR_CLASS][0])
        assert sr.StudyInstanceUID == uid and sr.Manufacturer == "Yunying AI"
        texts = str(sr.ContentSequence)
        assert ("head-ct-ich" in texts) == (name in {"bleed", "head"}), name
        assert ("chest-dx-triage" in texts) == (name in {"pneumothorax", "chest"}), name
        heatmaps = series.get(SC_CLASS, [])
        assert len(heatmaps) == (1 if name in {"bleed", "pneumothorax"} else 0), (name, len(heatmaps))
    overlay = retrieve(centre, studies["bleed"], derived_series(centre, studies["bleed"])[SC_CLASS][0])
    assert overlay.SamplesPerPixel == 3 and (overlay.Rows, overlay.Columns) == (512, 512)
    assert ich.location[0]["sop_instance_uid"] in overlay.DerivationDescription
