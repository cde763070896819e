"""A study's images as model input: read through ``pacs`` (the index says which instances are
current and where their bytes lie; the store gives the bytes), never from guessed paths.

Only original image instances of the modalities the centre pre-screens are read: the
pre-screen's own results (SR, secondary-capture heat maps) and other derived objects in the
study are left out, so a re-run never reads its own output."""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Final

import pydicom
from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from ai_models.contract import SeriesInput, StudyInput
from ai_models.geometry import sorted_along_normal
from pacs.dicomweb.retrieve import NotFound, locate
from pacs.identity.users import Scope
from pacs.index.models import Study
from pacs.storage import BlobStore

# The image storage SOP classes models read (PS3.4 B.5): CT, DX for presentation and for
# processing, CR. Secondary Capture and SR — what the pre-screen itself writes — are not here.
IMAGE_SOP_CLASSES: Final = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
        "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage – For Presentation
        "1.2.840.10008.5.1.4.1.1.1.1.1",  # Digital X-Ray Image Storage – For Processing
        "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    }
)
# The worker sees every site's studies: it works for the centre, not for a user.
CENTRE_SCOPE: Final = Scope(site_ids=None)


class StudyGone(LookupError):
    """The study is no longer in the index (deleted after its job was queued)."""


def study_input(session: Session, store: BlobStore, study_uid: str) -> StudyInput:
    """The study's current image instances, grouped by series, CT slices sorted along the slice
    normal. Raises ``StudyGone`` when the study is not indexed, ``StoreUnavailable`` when the
    store cannot be read (the job is then retried), and pydicom errors for an object that
    cannot be parsed."""
    study = session.scalar(select(Study).where(Study.study_uid == study_uid))
    if study is None:
        raise StudyGone(f"study {study_uid} is not in the index")
    try:
        located = locate(session, CENTRE_SCOPE, study_uid)
    except NotFound:
        located = []
    by_series: dict[str, list[Dataset]] = defaultdict(list)
    for item in located:
        if item.sop_class_uid not in IMAGE_SOP_CLASSES:
            continue
        by_series[item.series_uid].append(pydicom.dcmread(io.BytesIO(store.get(item.stored.object_key))))
    series = []
    for series_uid, instances in by_series.items():
        first = instances[0]
        modality = str(getattr(first, "Modality", "") or "")
        ordered = sorted_along_normal(instances) if modality == "CT" else tuple(instances)
        series.append(
            SeriesInput(
                series_uid=series_uid,
                modality=modality,
                body_part=str(getattr(first, "BodyPartExamined", "") or "") or None,
                description=str(getattr(first, "SeriesDescription", "") or "") or None,
                instances=ordered,
            )
        )
    return StudyInput(
        study_uid=study_uid,
        modality=_imaging_modality(series, study.modalities),
        body_part=study.body_part,
        series=tuple(series),
    )


def _imaging_modality(series: list[SeriesInput], indexed: str) -> str:
    """CT over radiography when a study has both (a CT with its scout sent as DX); the index's
    first modality when no image was readable."""
    present = {s.modality for s in series}
    for modality in ("CT", "DX", "CR"):
        if modality in present:
            return modality
    return next((m for m in indexed.split("\\") if m), "")
