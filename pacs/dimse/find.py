"""C-FIND and C-MOVE/C-GET identifiers (PS3.4 C.4) translated to the shared index query
(``pacs/query.py``), and C-FIND answers built from index rows — no pynetdicom here.

An identifier names its level (QueryRetrieveLevel) and its keys: a key with a value is matched
exactly as QIDO-RS matches it; an empty key is universal matching and is answered. The answer
carries exactly the keys asked for (PS3.4 C.4.1.1.3.2), values from the index, and
SpecificCharacterSet ``ISO_IR 192``, so Chinese names arrive intact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag

from pacs.query import BY_KEYWORD, BY_TAG, Attribute, Level, QueryError, attributes_at, check_match

Model = Literal["patient", "study"]
# PS3.4 C.6.1 / C.6.2: the levels of each information model.
MODEL_LEVELS: Final[dict[Model, dict[str, Level]]] = {
    "patient": {"PATIENT": "patient", "STUDY": "study", "SERIES": "series", "IMAGE": "instance"},
    "study": {"STUDY": "study", "SERIES": "series", "IMAGE": "instance"},
}
# The unique key of each level (PS3.4 C.6.1.1): a C-MOVE / C-GET must name the level's one.
UNIQUE_KEYS: Final[dict[Level, str]] = {
    "patient": "PatientID",
    "study": "StudyInstanceUID",
    "series": "SeriesInstanceUID",
    "instance": "SOPInstanceUID",
}
SPECIFIC_CHARACTER_SET = Tag(0x0008, 0x0005)
QUERY_RETRIEVE_LEVEL = Tag(0x0008, 0x0052)
RETRIEVE_AE_TITLE = Tag(0x0008, 0x0054)
INSTANCE_AVAILABILITY = Tag(0x0008, 0x0056)
PATIENT_STUDY_COUNT = Tag(0x0020, 0x1200)  # NumberOfPatientRelatedStudies
ANSWER_CHARSET = "ISO_IR 192"


@dataclass(frozen=True)
class FindRequest:
    level: Level
    qr_level: str  # as the peer spelled it: PATIENT, STUDY, SERIES or IMAGE
    matches: tuple[tuple[Attribute, str], ...]
    requested: tuple[DataElement, ...]  # the keys to answer, in the identifier's order


def _level(identifier: Dataset, model: Model) -> tuple[Level, str]:
    if QUERY_RETRIEVE_LEVEL not in identifier:
        raise QueryError("the identifier has no QueryRetrieveLevel (0008,0052)")
    spelled = str(identifier[QUERY_RETRIEVE_LEVEL].value or "").strip().upper()
    levels = MODEL_LEVELS[model]
    if spelled not in levels:
        raise QueryError(f"QueryRetrieveLevel {spelled!r} is not one of {', '.join(levels)} in this model")
    return levels[spelled], spelled


def _text(element: DataElement) -> str:
    """An element's value as the matcher takes it: multiple values joined by backslash (a UID
    list), a person name with its component groups joined by '='."""
    value = element.value
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip()
    return str(value).strip()


def parse_find(identifier: Dataset, model: Model, *, assumed_charset: str | None = None) -> FindRequest:
    """The query an identifier asks for. An identifier without SpecificCharacterSet is read in
    ``assumed_charset`` (a site AE's, as for its C-STOREs) or UTF-8 — both supersets of the
    default repertoire, so an ASCII query is unaffected. Raises ``QueryError`` for a missing or
    unknown level, or a key that cannot be matched at that level (the SCP answers 0xA900)."""
    if SPECIFIC_CHARACTER_SET not in identifier:
        identifier.SpecificCharacterSet = assumed_charset or ANSWER_CHARSET
    level, spelled = _level(identifier, model)
    matches: list[tuple[Attribute, str]] = []
    requested: list[DataElement] = []
    for element in identifier:
        if element.tag in (SPECIFIC_CHARACTER_SET, QUERY_RETRIEVE_LEVEL):
            continue
        requested.append(element)
        if element.VR == "SQ":
            continue  # sequence matching is not supported: answered empty
        attribute = BY_TAG.get(f"{element.tag:08X}")
        value = _text(element)
        if attribute is None or not value:
            continue  # universal matching, or a key the index does not hold: answered empty
        name = element.keyword or f"({element.tag.group:04X},{element.tag.element:04X})"
        check_match(name, attribute, value, level)
        matches.append((attribute, value))
    return FindRequest(level, spelled, tuple(matches), tuple(requested))


def parse_retrieve(identifier: Dataset, model: Model) -> tuple[Level, tuple[tuple[Attribute, str], ...]]:
    """The selection of a C-MOVE / C-GET: the unique keys of the level and above (PS3.4
    C.4.2.2.1). Raises ``QueryError`` when the level's own unique key is missing or empty."""
    level, spelled = _level(identifier, model)
    own = UNIQUE_KEYS[level]
    matches: list[tuple[Attribute, str]] = []
    for candidate, key in UNIQUE_KEYS.items():
        attribute = BY_KEYWORD[key]
        value = _text(identifier[key]) if key in identifier else ""
        if key == own and not value:
            raise QueryError(f"a {spelled}-level retrieve needs {own}")
        if value and candidate in _levels_up_to(level):
            matches.append((attribute, value))
    return level, tuple(matches)


def _levels_up_to(level: Level) -> Sequence[Level]:
    order: list[Level] = ["patient", "study", "series", "instance"]
    return order[: order.index(level) + 1]


def answer(request: FindRequest, values: dict[str, Any], *, ae_title: str, patient_studies: int | None) -> Dataset:
    """One C-FIND pending answer: the requested keys, valued from ``values`` (keyword → index
    value) where the index knows them at this level, zero-length where it does not."""
    answer = Dataset()
    answer.SpecificCharacterSet = ANSWER_CHARSET
    answer.QueryRetrieveLevel = request.qr_level
    known = {a.tag: a for a in attributes_at(request.level)}
    for element in request.requested:
        tag: BaseTag = element.tag
        attribute = known.get(f"{tag:08X}")
        if attribute is not None:
            answer.add_new(tag, attribute.vr, _dicom_value(attribute, values.get(attribute.keyword)))
        elif tag == RETRIEVE_AE_TITLE:
            answer.add_new(tag, "AE", ae_title)
        elif tag == INSTANCE_AVAILABILITY:
            answer.add_new(tag, "CS", "ONLINE")  # every indexed instance is in the object store
        elif tag == PATIENT_STUDY_COUNT and patient_studies is not None:
            answer.add_new(tag, "IS", patient_studies)
        elif element.VR == "SQ":
            answer.add_new(tag, "SQ", [])
        else:
            answer.add_new(tag, element.VR, None)
    return answer


def _dicom_value(attribute: Attribute, value: Any) -> Any:
    if value is None or value == "":
        return None
    if attribute.vr in {"IS", "US"}:
        return int(value)
    if attribute.keyword == "ModalitiesInStudy":
        return [m for m in str(value).split("\\") if m]
    return str(value)
