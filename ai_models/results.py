"""The pre-screen as DICOM, so any viewer or PACS sees it: one Comprehensive SR per pre-screened
study (TID 1500 measurement report: one group per model, with the model name and version as
its algorithm identification, each label a qualitative evaluation — positive/negative — with
its probability and a sentence why), and one Secondary Capture per heat map.

Heat maps as Secondary Capture *overlays* (the source image in greys with the heat map blended
in colour) rather than a segmentation or parametric map: every viewer and every small site
PACS shows an RGB secondary capture, while parametric maps and SEG are shown by few of the
viewers our sites run — a heat map nobody can open helps nobody.

Both are marked AI-derived (series description "AI 预筛 / AI pre-screen", manufacturer
"Yunying AI", the algorithm in the SR and in Contributing Equipment) and carry UTF-8 text
(ISO_IR 192). UIDs are derived from the study and the job, so a retried job writes the same
objects again (pacs then sees duplicates, not new series).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, cast

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pydicom.valuerep import DA, TM

from ai_models.contract import Finding, StudyInput
from ai_models.runner import ModelOutcome

MANUFACTURER: Final = "Yunying AI"
SERIES_DESCRIPTION: Final = "AI 预筛 / AI pre-screen"
HEATMAP_DESCRIPTION: Final = "AI 预筛热图 / AI pre-screen heat map"
SR_SERIES_NUMBER: Final = 9901
HEATMAP_SERIES_NUMBER: Final = 9902
UTF8: Final = "ISO_IR 192"
LOCAL_SCHEME: Final = "99YUNYING"

POSITIVE: Final = hd.sr.CodedConcept("10828004", "SCT", "Positive")
NEGATIVE: Final = hd.sr.CodedConcept("260385009", "SCT", "Negative")
PROBABILITY: Final = hd.sr.CodedConcept("{probability}", "UCUM", "probability")
COMMENT: Final = hd.sr.CodedConcept("121106", "DCM", "Comment")
IMAGING_PROCEDURE: Final = hd.sr.CodedConcept("363679005", "SCT", "Imaging procedure")
PRESCREEN_TITLE: Final = hd.sr.CodedConcept("126000", "DCM", "Imaging Measurement Report")


@dataclass(frozen=True)
class DerivedObject:
    """One object to ingest back into the study, with what it is (for the log and changes)."""

    dataset: Dataset
    kind: str  # "sr" or "heatmap"


def _uid(study: StudyInput, job_id: int, *parts: object) -> str:
    return str(generate_uid(entropy_srcs=["yunying.ai/v1", study.study_uid, str(job_id), *map(str, parts)]))


def prescreen_objects(
    study: StudyInput, outcomes: Sequence[ModelOutcome], *, job_id: int, when: datetime
) -> list[DerivedObject]:
    """The SR and one overlay per heat map. Raises ``ValueError`` when the study has no image
    to take patient and study from (the worker then writes findings but no DICOM)."""
    evidence = [ds for series in study.series for ds in series.instances]
    if not evidence:
        raise ValueError(f"study {study.study_uid} has no image to refer to")
    objects = [DerivedObject(prescreen_sr(study, outcomes, evidence, job_id=job_id, when=when), "sr")]
    by_uid = {str(ds.SOPInstanceUID): ds for ds in evidence}
    number = 0
    for outcome in outcomes:
        for finding in outcome.findings:
            if finding.heatmap is None or finding.heatmap_of not in by_uid:
                continue
            number += 1
            objects.append(
                DerivedObject(
                    heatmap_overlay(by_uid[finding.heatmap_of], finding, study, job_id, number, when), "heatmap"
                )
            )
    return objects


def prescreen_sr(
    study: StudyInput, outcomes: Sequence[ModelOutcome], evidence: list[Dataset], *, job_id: int, when: datetime
) -> Dataset:
    """The TID 1500 report of one pre-screen: a group per model that ran, failed or declined."""
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=_uid(study, 0, "device"), name="Yunying AI pre-screen", manufacturer_name=MANUFACTURER
    )
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"), observer_identifying_attributes=device
        )
    )
    groups = [_model_group(study, outcome, evidence, job_id) for outcome in outcomes]
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=IMAGING_PROCEDURE,
        imaging_measurements=groups,
        title=PRESCREEN_TITLE,
    )
    sr = hd.sr.ComprehensiveSR(
        evidence=evidence,
        content=report[0],
        series_instance_uid=_uid(study, job_id, "sr-series"),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=_uid(study, job_id, "sr"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        specific_character_set=UTF8,  # FIELD-NOTES: highdicom copies the evidence's otherwise
        series_description=SERIES_DESCRIPTION,
        content_date=DA(when.strftime("%Y%m%d")),
        content_time=TM(when.strftime("%H%M%S")),
    )
    _stamp(sr, evidence[0], when)
    return cast(Dataset, sr)


def _model_group(
    study: StudyInput, outcome: ModelOutcome, evidence: list[Dataset], job_id: int
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    entry = outcome.entry
    algorithm = hd.sr.AlgorithmIdentification(name=entry.name, version=entry.version, manufacturer=MANUFACTURER)
    classes = {str(ds.SOPInstanceUID): str(ds.SOPClassUID) for ds in evidence}
    evaluations = [
        hd.sr.QualitativeEvaluation(_label(f.label), POSITIVE if f.positive else NEGATIVE) for f in outcome.findings
    ]
    measurements = [
        hd.sr.Measurement(name=_label(f.label), value=round(f.probability, 4), unit=PROBABILITY, algorithm_id=algorithm)
        for f in outcome.findings
        if f.probability is not None
    ]
    looked_at = dict.fromkeys(loc.sop_instance_uid for f in outcome.findings if f.positive for loc in f.locations)
    sources = [hd.sr.SourceImageForMeasurementGroup(classes[uid], uid) for uid in looked_at if uid in classes]
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=_uid(study, job_id, "group", entry.name), identifier=f"{entry.name} {entry.version}"
        ),
        algorithm_id=algorithm,
        qualitative_evaluations=evaluations or None,
        measurements=measurements or None,
        source_images=sources or None,
    )
    # TID 1501 has no free-text row; a Comment (DCM 121106) is where a reader looks for why.
    group[0].ContentSequence.append(hd.sr.TextContentItem(COMMENT, _summary(outcome), relationship_type="CONTAINS"))
    return group


def _summary(outcome: ModelOutcome) -> str:
    entry = outcome.entry
    validated = "clinically validated" if entry.clinically_validated else "not clinically validated: advisory only"
    if outcome.status == "failed":
        return f"{entry.name} {entry.version} failed: {outcome.reason}"
    if outcome.status == "skipped":
        return f"{entry.name} {entry.version} did not read this study: {outcome.reason}"
    positives = [f for f in outcome.findings if f.positive]
    if not positives:
        head = "QC passed" if entry.kind == "rules" else "no finding above its operating point"
        return f"{head} ({entry.name} {entry.version}, {validated})."
    lines = [f"{f.label}: {f.explanation}" for f in positives]
    return f"{entry.name} {entry.version} ({validated}): " + " | ".join(lines)


def _label(label: str) -> hd.sr.CodedConcept:
    # A code value is SH (16 characters): a longer label gets a short stable digest as its
    # code, and keeps its full name as the code meaning.
    value = label if len(label) <= 16 else f"{label[:9]}~{hashlib.sha256(label.encode()).hexdigest()[:6]}"
    return hd.sr.CodedConcept(value, LOCAL_SCHEME, label)


def heatmap_overlay(
    source: Dataset, finding: Finding, study: StudyInput, job_id: int, number: int, when: datetime
) -> Dataset:
    """The source image in greys (its own window) with the heat map blended in red–yellow
    where it is above 0.2, as an RGB Secondary Capture in a new series of the study."""
    assert finding.heatmap is not None
    grey = _windowed(source)
    heat = np.clip(finding.heatmap.astype(np.float32), 0.0, 1.0)
    if heat.shape != grey.shape:
        raise ValueError(f"heat map {heat.shape} does not match image {grey.shape} of {source.SOPInstanceUID}")
    # The viewer's overlay (viewer/web/src/viewer/heatmap.ts) undoes this blend to draw the heat
    # alone over the reader's own window: R − B is the alpha and (G − B) / (R − B) the heat.
    colour = np.stack([np.ones_like(heat), heat, np.zeros_like(heat)], axis=-1)  # red → yellow
    alpha = np.where(heat > 0.2, 0.5 * heat, 0.0)[..., None]
    rgb = (grey[..., None] * (1 - alpha) + colour * alpha) * 255
    orientation = getattr(source, "PatientOrientation", None)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=np.clip(np.rint(rgb), 0, 255).astype(np.uint8),
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=_uid(study, job_id, "heatmap-series"),
        series_number=HEATMAP_SERIES_NUMBER,
        sop_instance_uid=_uid(study, job_id, "heatmap", number),
        instance_number=number,
        manufacturer=MANUFACTURER,
        patient_orientation=tuple(orientation) if orientation and len(orientation) == 2 else ("L", "P"),
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        specific_character_set=UTF8,
        series_description=HEATMAP_DESCRIPTION,
    )
    sc.Modality = "OT"  # not an image a reader reads: routing ignores OT (reading/worklist/routing.py)
    sc.ImageComments = f"{finding.model} {finding.version}: {finding.label} {finding.explanation}"[:10240]
    sc.DerivationDescription = f"heat map of {finding.model} {finding.version} over instance {source.SOPInstanceUID}"
    # PS3.3 C.7.6.1.1.4: a derived image names the image it was derived from. The viewer lays
    # the heat map over that slice by this reference (the SC has no Image Position of its own).
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    sc.SourceImageSequence = [reference]
    sc.BurnedInAnnotation = "NO"
    _stamp(sc, source, when)
    return cast(Dataset, sc)


def _windowed(ds: Dataset) -> npt.NDArray[np.float32]:
    """The image as the reader would see it, 0…1: its first VOI window, else 1–99 %."""
    pixels: npt.NDArray[np.float32] = np.asarray(ds.pixel_array, dtype=np.float32)
    pixels = pixels * float(getattr(ds, "RescaleSlope", 1) or 1) + float(getattr(ds, "RescaleIntercept", 0) or 0)
    centre, width = getattr(ds, "WindowCenter", None), getattr(ds, "WindowWidth", None)
    if centre is not None and width is not None:
        centre = float(centre[0] if isinstance(centre, Sequence) else centre)
        width = max(float(width[0] if isinstance(width, Sequence) else width), 1.0)
        low, high = centre - width / 2, centre + width / 2
    else:
        low, high = (float(v) for v in np.percentile(pixels, [1.0, 99.0]))
    scaled = np.clip((pixels - low) / max(high - low, 1.0), 0.0, 1.0)
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
        scaled = 1.0 - scaled
    result: npt.NDArray[np.float32] = scaled.astype(np.float32)
    return result


def _stamp(ds: Dataset, source: Dataset, when: datetime) -> None:
    """Times from the job, not the clock (a retried job rebuilds the same bytes), and people's
    names as decoded text: FIELD-NOTES — a name copied with its GB18030 bytes under ISO_IR 192
    comes out garbled."""
    ds.InstanceCreationDate = DA(when.strftime("%Y%m%d"))
    ds.InstanceCreationTime = TM(when.strftime("%H%M%S"))
    ds.SpecificCharacterSet = UTF8
    for keyword in ("PatientName", "ReferringPhysicianName"):
        value = getattr(source, keyword, None)
        if value is not None:
            setattr(ds, keyword, str(value))
    for equipment in ds.get("ContributingEquipmentSequence", []):
        equipment.ContributionDateTime = when.strftime("%Y%m%d%H%M%S")
