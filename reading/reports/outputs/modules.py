"""The DICOM modules every report object shares, filled from the document in one place.

Patient (PS3.3 C.7.1.1), General Study (C.7.2.1), Patient Study (C.7.2.2), a General Series-like
series, General Equipment (C.7.5.1) and SOP Common (C.12.1). Text is always decoded ``str``
under ``ISO_IR 192`` (UTF-8): Chinese names must not pass through a GB18030 or Latin-1 guess
(FIELD-NOTES, "Character sets").
"""

from __future__ import annotations

from typing import Final

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

from reading.reports.document import ReportDocument
from reading.reports.outputs.facts import (
    dicom_date,
    dicom_time,
    document_time,
    patient_age,
)
from reading.reports.outputs.uids import OutputKind, output_uid, series_uid

UTF8: Final = "ISO_IR 192"
MANUFACTURER: Final = "Yunying"
# High numbers keep the report series after the acquired ones in a viewer's series list.
SERIES_NUMBERS: Final[dict[OutputKind, int]] = {"sr": 9001, "pdf": 9002, "image": 9003}


def patient_and_study(doc: ReportDocument) -> Dataset:
    """A data set holding only the Patient and General Study modules of the report's study.

    Type 2 attributes are present even when unknown (empty), as PS3.3 requires.
    """
    ds = Dataset()
    ds.SpecificCharacterSet = UTF8
    ds.PatientName = doc.patient.name
    ds.PatientID = doc.patient.patient_id
    ds.PatientBirthDate = doc.patient.birth_date or ""
    ds.PatientSex = doc.patient.sex or ""
    age = patient_age(doc)
    if age is not None:
        ds.PatientAge = age[0]
    ds.StudyInstanceUID = doc.study.study_uid
    ds.StudyDate = doc.study.study_date or ""
    ds.StudyTime = doc.study.study_time or ""
    ds.ReferringPhysicianName = doc.study.referring_physician or ""
    ds.StudyID = doc.study.study_id or ""
    ds.AccessionNumber = doc.study.accession_number or ""
    if doc.study.study_description:
        ds.StudyDescription = doc.study.study_description
    return ds


def new_instance(
    doc: ReportDocument,
    *,
    kind: OutputKind,
    sop_class_uid: str,
    modality: str,
    series_description: str,
) -> Dataset:
    """A new instance of one report output with every shared module filled and its file meta
    set to Explicit VR Little Endian (PS3.10 7.1), ready for the output's own modules.

    The Instance Number is the report version, so versions sort in order within the series.
    """
    ds = patient_and_study(doc)
    sop_instance_uid = output_uid(doc, kind)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta

    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    when = document_time(doc)
    ds.InstanceCreationDate = dicom_date(when)
    ds.InstanceCreationTime = dicom_time(when)
    ds.TimezoneOffsetFromUTC = when.strftime("%z")

    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid(doc, kind)
    ds.SeriesNumber = SERIES_NUMBERS[kind]
    ds.SeriesDescription = series_description
    ds.SeriesDate = dicom_date(when)
    ds.SeriesTime = dicom_time(when)
    ds.InstanceNumber = doc.version
    ds.ContentDate = dicom_date(when)
    ds.ContentTime = dicom_time(when)

    ds.Manufacturer = MANUFACTURER
    ds.InstitutionName = doc.centre_name
    return ds
