"""The same patient across a consortium's sites.

Each clinic issues its own Patient IDs, so one person has a different ID at the township health
centre, the village clinic and the county hospital. Two patient rows (pacs.index ``patient``: one
per site and Patient ID) are the same person when

* **national ID**: both carry the same resident identity card number (居民身份证号), issued by
  ``YUNYING_NATIONAL_ID_ISSUER`` (default ``CN-RIC``; docs/conformance.md, "Patient identity
  across sites"), in an item of
  Other Patient IDs Sequence (0010,1002) or as Patient ID with that Issuer of Patient ID
  (0010,0021); or
* **probable**: neither rules it out by carrying a different card number, and the normalised
  Patient's Name, Patient's Birth Date and Patient's Sex are all present and equal; a reader may
  confirm (basis **confirmed**) or reject (not listed any more) such a pair (pacs/patient_links.py).

The same Patient ID at the same site is the same patient row (``same_id``). Nothing ever matches
across consortiums: the consortium is the tenancy boundary (DESIGN.md).

Matching reads two indexed columns that ingest fills (``patient.national_id`` and
``patient.demographics_key``, migration 0018): no header is parsed at query time.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from pacs.index.models import Patient, Site, Study
from pacs.patient_links import LinkDecision, link_decisions
from pacs.settings import DEFAULT_NATIONAL_ID_ISSUER

# The default Issuer of Patient ID (0010,0021) that marks a number as a PRC resident identity
# card number (GB 11643-1999); a deployment sets its own with YUNYING_NATIONAL_ID_ISSUER.
NATIONAL_ID_ISSUER: Final = DEFAULT_NATIONAL_ID_ISSUER

_RESIDENT_ID = re.compile(r"^[0-9]{17}[0-9X]$")
# GB 11643-1999 check digit (ISO 7064 MOD 11-2): weights of the first 17 digits, and the
# check character for each remainder.
_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK: Final = "10X98765432"
_SEXES: Final = frozenset({"M", "F", "O"})
_DATE = re.compile(r"^[0-9]{8}$")


class MatchBasis(StrEnum):
    SAME_ID = "same_id"  # the same Patient ID at the same site
    NATIONAL_ID = "national_id"  # the same resident identity card number
    PROBABLE = "probable"  # name + birth date + sex, no ID card to confirm or refute it
    CONFIRMED = "confirmed"  # probable, and a reader confirmed it is the same person


def resident_id(value: object) -> str | None:
    """The resident identity card number in ``value``, normalised (upper-case ``X``); ``None``
    when it is not an 18-character number with a valid check character (a typo must not make
    two people one)."""
    text = str(value or "").strip().upper()
    if not _RESIDENT_ID.match(text):
        return None
    return text if check_character(text[:17]) == text[17] else None


def check_character(first17: str) -> str:
    """The check character that completes a 17-digit resident ID (for test and demo data)."""
    return _CHECK[sum(int(digit) * weight for digit, weight in zip(first17, _WEIGHTS, strict=True)) % 11]


def national_id_of(ds: Any, issuer: str = NATIONAL_ID_ISSUER) -> str | None:
    """The resident ID a data set carries under ``issuer``: Patient ID itself when Issuer of
    Patient ID names it, else the first such item of Other Patient IDs Sequence. ``None`` when
    there is none or it is malformed. Never raises for odd content."""
    try:
        if str(ds.get("IssuerOfPatientID", "") or "").strip() == issuer:
            found = resident_id(ds.get("PatientID"))
            if found:
                return found
        for item in ds.get("OtherPatientIDsSequence", None) or ():
            if str(item.get("IssuerOfPatientID", "") or "").strip() == issuer:
                found = resident_id(item.get("PatientID"))
                if found:
                    return found
    except Exception:  # noqa: BLE001 — a malformed sequence leaves the patient without an ID card, nothing more
        return None
    return None


def normalised_name(name: str | None) -> str | None:
    """A Patient's Name as compared across sites: the ideographic group when there is one (PS3.5
    6.2.1.2: alphabetic=ideographic=phonetic), else the alphabetic one; component separators,
    spaces and punctuation removed, case and width folded (全角 → half-width)."""
    if not name:
        return None
    groups = str(name).split("=")
    chosen = groups[1] if len(groups) > 1 and groups[1].strip("^ ") else groups[0]
    folded = unicodedata.normalize("NFKC", chosen).casefold()
    kept = "".join(ch for ch in folded if ch.isalnum())
    return kept or None


def demographics_key(name: str | None, birth_date: str | None, sex: str | None) -> str | None:
    """sha256 of normalised name, birth date and sex, or ``None`` unless all three are present
    and well-formed (an unknown sex or a partial date never makes a probable match). A digest,
    so the index holds no second copy of the name."""
    who = normalised_name(name)
    born = (birth_date or "").strip()
    sex = (sex or "").strip().upper()
    if not who or not _DATE.match(born) or sex not in _SEXES:
        return None
    return hashlib.sha256(f"{who}|{born}|{sex}".encode()).hexdigest()


@dataclass(frozen=True)
class PriorStudy:
    """Another study of the same patient, and why it is thought to be his."""

    study_uid: str
    site_id: int
    site_name: str
    study_date: str | None
    study_time: str | None
    modalities: str
    description: str | None
    num_instances: int
    patient_id: str | None
    basis: MatchBasis
    patient_pk: int  # the patient row the study is filed under
    decided_by: str | None = None  # who confirmed it (basis ``confirmed``)


def _basis(own: Patient, other: Patient) -> MatchBasis | None:
    if other.id == own.id:
        return MatchBasis.SAME_ID
    if own.national_id and other.national_id:
        # Two different card numbers are two people, whatever their names say.
        return MatchBasis.NATIONAL_ID if own.national_id == other.national_id else None
    if own.demographics_key and own.demographics_key == other.demographics_key:
        return MatchBasis.PROBABLE
    return None


def prior_studies(session: Session, study_uid: str) -> list[PriorStudy]:
    """The other studies of ``study_uid``'s patient at any site of its consortium, newest first,
    each with its match basis. Raises ``LookupError`` for an unknown study."""
    found = session.execute(
        select(Patient, Site.consortium_id)
        .join(Study, Study.patient_pk == Patient.id)
        .join(Site, Site.id == Study.site_id)
        .where(Study.study_uid == study_uid)
    ).first()
    if found is None:
        raise LookupError(f"no study {study_uid}")
    own, consortium_id = found
    same: list[Any] = [Patient.id == own.id]
    if own.national_id:
        same.append(Patient.national_id == own.national_id)
    if own.demographics_key:
        same.append(Patient.demographics_key == own.demographics_key)
    # Patients first (an index lookup per column, OR-ed), then their studies by patient_pk: one
    # join of study, patient and site under the OR walked the consortium's studies instead
    # (SQLite, 50,000 studies on 40 sites: a median 850 ms a call, against 8.5 ms so).
    candidates = session.scalars(
        select(Patient).join(Site, Site.id == Patient.site_id).where(Site.consortium_id == consortium_id, or_(*same))
    ).all()
    bases = {patient.id: basis for patient in candidates if (basis := _basis(own, patient)) is not None}
    probable = [pk for pk, basis in bases.items() if basis is MatchBasis.PROBABLE]
    decided_by: dict[int, str] = {}
    for pk, (decision, by) in link_decisions(session, own.id, probable).items():
        if decision is LinkDecision.REJECTED:
            del bases[pk]
        else:
            bases[pk], decided_by[pk] = MatchBasis.CONFIRMED, by
    rows = session.execute(
        select(Study, Site.name)
        .join(Site, Site.id == Study.site_id)
        .where(Study.patient_pk.in_(sorted(bases)), Study.study_uid != study_uid)
    ).all()
    priors = [
        PriorStudy(
            study_uid=study.study_uid,
            site_id=study.site_id,
            site_name=site_name,
            study_date=study.study_date,
            study_time=study.study_time,
            modalities=study.modalities,
            description=study.study_description,
            num_instances=study.num_instances,
            patient_id=study.patient_id,
            basis=bases[study.patient_pk],
            patient_pk=study.patient_pk,
            decided_by=decided_by.get(study.patient_pk),
        )
        for study, site_name in rows
    ]
    return sorted(priors, key=lambda p: (p.study_date or "", p.study_time or "", p.study_uid), reverse=True)


def own_patient(session: Session, study_uid: str) -> Patient | None:
    """The patient row ``study_uid`` is filed under."""
    return session.scalar(
        select(Patient).join(Study, Study.patient_pk == Patient.id).where(Study.study_uid == study_uid)
    )


def identity_values(tags: dict[str, Any]) -> dict[str, str | None]:
    """The matching columns of a patient row from the tags ingest read (``pacs.part10``)."""
    return {
        "national_id": tags.get("national_id"),
        "demographics_key": demographics_key(tags.get("patient_name"), tags.get("birth_date"), tags.get("sex")),
    }


def refresh_identity(patient: Patient, tags: dict[str, Any]) -> str | None:
    """Fill a known patient row's missing matching columns from a newer study's tags: a site
    that starts recording the ID card links its earlier studies too. A column already set is
    kept (a patient row is one site's Patient ID; its first identity stands). Returns the other
    valid card number a newer study brings when the row already has one (the caller raises an
    alert: one Patient ID with two ID cards is a registration error at the site), else ``None``."""
    values = identity_values(tags)
    if patient.national_id is None and values["national_id"]:
        patient.national_id = values["national_id"]
    if patient.demographics_key is None and values["demographics_key"]:
        patient.demographics_key = values["demographics_key"]
    if values["national_id"] and values["national_id"] != patient.national_id:
        return values["national_id"]
    return None


def masked(card: str) -> str:
    """An ID card number as an alert shows it: the region code and the last four characters,
    not the birth date (``320981********262X``)."""
    return f"{card[:6]}{'*' * (len(card) - 10)}{card[-4:]}"
