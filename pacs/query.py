"""Matching on the index's columns (PS3.4 C.2.2.2), shared by QIDO-RS and C-FIND — no framework.

One attribute table and one matcher, so a search by DICOMweb and a search by DIMSE answer
the same studies: single value, wildcard (``*``, ``?``), range (dates and times), UID lists,
and person names case-insensitive for Latin and intact for Chinese. Both protocol edges
translate their request into ``(Attribute, value)`` pairs and call ``matching_statement``;
the statement never touches the objects in the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, and_, func, literal, or_, select

from pacs.identity.users import Scope
from pacs.index.models import Instance, Patient, Series, Study

Level = Literal["patient", "study", "series", "instance"]


class QueryError(ValueError):
    """A query the server cannot run; the message says what to change."""


@dataclass(frozen=True)
class Attribute:
    keyword: str
    tag: str  # 8 hex digits, upper case, as in the DICOM JSON model
    vr: str
    level: Level
    column: Any  # an ORM column


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("PatientName", "00100010", "PN", "patient", Study.patient_name),
    Attribute("PatientID", "00100020", "LO", "patient", Study.patient_id),
    Attribute("PatientBirthDate", "00100030", "DA", "patient", Patient.birth_date),
    Attribute("PatientSex", "00100040", "CS", "patient", Patient.sex),
    Attribute("StudyInstanceUID", "0020000D", "UI", "study", Study.study_uid),
    Attribute("StudyDate", "00080020", "DA", "study", Study.study_date),
    Attribute("StudyTime", "00080030", "TM", "study", Study.study_time),
    Attribute("AccessionNumber", "00080050", "SH", "study", Study.accession_number),
    Attribute("ModalitiesInStudy", "00080061", "CS", "study", Study.modalities),
    Attribute("ReferringPhysicianName", "00080090", "PN", "study", Study.referring_physician),
    Attribute("StudyDescription", "00081030", "LO", "study", Study.study_description),
    Attribute("StudyID", "00200010", "SH", "study", Study.study_id),
    Attribute("NumberOfStudyRelatedSeries", "00201206", "IS", "study", Study.num_series),
    Attribute("NumberOfStudyRelatedInstances", "00201208", "IS", "study", Study.num_instances),
    Attribute("Modality", "00080060", "CS", "series", Series.modality),
    Attribute("SeriesDescription", "0008103E", "LO", "series", Series.series_description),
    Attribute("BodyPartExamined", "00180015", "CS", "series", Series.body_part),
    Attribute("SeriesInstanceUID", "0020000E", "UI", "series", Series.series_uid),
    Attribute("SeriesNumber", "00200011", "IS", "series", Series.series_number),
    Attribute("NumberOfSeriesRelatedInstances", "00201209", "IS", "series", Series.num_instances),
    Attribute("SOPClassUID", "00080016", "UI", "instance", Instance.sop_class_uid),
    Attribute("SOPInstanceUID", "00080018", "UI", "instance", Instance.sop_instance_uid),
    Attribute("InstanceNumber", "00200013", "IS", "instance", Instance.instance_number),
    Attribute("NumberOfFrames", "00280008", "IS", "instance", Instance.number_of_frames),
    Attribute("Rows", "00280010", "US", "instance", Instance.rows),
    Attribute("Columns", "00280011", "US", "instance", Instance.columns),
)
BY_KEYWORD = {a.keyword: a for a in ATTRIBUTES}
BY_TAG = {a.tag: a for a in ATTRIBUTES}
# The levels whose attributes an answer at a level carries (a study answer names its patient).
LEVELS: dict[Level, tuple[Level, ...]] = {
    "patient": ("patient",),
    "study": ("patient", "study"),
    "series": ("patient", "study", "series"),
    "instance": ("patient", "study", "series", "instance"),
}
# Attributes that are not matching keys at all: counts are answered, not matched.
NOT_MATCHABLE = {"NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "NumberOfSeriesRelatedInstances"}
_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")


def attributes_at(level: Level) -> tuple[Attribute, ...]:
    """The attributes an answer at ``level`` carries, in table order (the row order of
    ``matching_statement``)."""
    levels = LEVELS[level]
    return tuple(a for a in ATTRIBUTES if a.level in levels)


def matching_keys(level: Level) -> list[str]:
    return [a.keyword for a in attributes_at(level) if a.keyword not in NOT_MATCHABLE]


def check_match(name: str, attribute: Attribute, value: str, level: Level) -> None:
    """Raise ``QueryError`` naming the fix when ``value`` cannot be matched on ``attribute`` in a
    ``level`` search: a count, a key of a lower level, or a malformed date, time or number."""
    if attribute.keyword in NOT_MATCHABLE:
        raise QueryError(f"{name} is not a matching key here; keys: {', '.join(matching_keys(level))}")
    if attribute.level not in LEVELS[level]:
        raise QueryError(f"{name} is a {attribute.level}-level key and cannot be matched in a {level} search")
    if attribute.vr == "DA":
        _check_range(name, value, _DATE, "YYYYMMDD")
    elif attribute.vr == "TM":
        _check_range(name, value, _TIME, "HHMMSS")
    elif attribute.vr in {"IS", "US"} and not re.fullmatch(r"-?\d+", value):
        raise QueryError(f"{name} matches whole numbers only, not {value!r}")


def _check_range(name: str, value: str, pattern: re.Pattern[str], form: str) -> None:
    parts = value.split("-") if "-" in value else [value]
    if len(parts) > 2 or not any(parts) or not all(pattern.match(p) for p in parts if p):
        raise QueryError(f"{name} must be {form}, {form}-{form}, {form}- or -{form}; got {value!r}")


def _like(value: str) -> str:
    """A DICOM wildcard pattern (``*``, ``?``) as a LIKE pattern with ``\\`` as escape."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def condition(attribute: Attribute, value: str) -> ColumnElement[bool]:
    """The SQL condition for one matching key (PS3.4 C.2.2.2); ``value`` was checked by
    ``check_match`` and is not empty (an empty value is universal matching: no condition)."""
    column = attribute.column
    if attribute.vr == "UI":
        uids = [u for u in re.split(r"[\\,]", value) if u]
        return column.in_(uids)  # type: ignore[no-any-return]
    if attribute.vr in {"DA", "TM"}:
        if "-" not in value:
            return column == value  # type: ignore[no-any-return]
        low, high = value.split("-")
        conditions = []
        if low:
            conditions.append(column >= low)
        if high:
            # A time range's upper bound includes every fraction of its last unit (PS3.4 C.2.2.2.5).
            conditions.append(column <= (high + "\uffff" if attribute.vr == "TM" else high))
        return and_(*conditions)
    if attribute.vr in {"IS", "US"}:
        return column == int(value)  # type: ignore[no-any-return]
    if attribute.keyword == "ModalitiesInStudy":
        modalities = [m for m in re.split(r"[\\,]", value) if m]
        wrapped = literal("\\") + column + literal("\\")
        return or_(*(wrapped.like(f"%\\{m}\\%", escape="!") for m in modalities))
    if attribute.vr == "PN":
        # Case-insensitive for Latin, intact for Chinese; a name may hold several component
        # groups (alphabetic=ideographic=phonetic): any one of them may match.
        pattern = func.lower(literal(_like(value)))
        haystack = func.lower(column)
        return or_(
            haystack.like(pattern, escape="\\"),
            haystack.like(pattern + literal("=%"), escape="\\"),
            haystack.like(literal("%=") + pattern, escape="\\"),
            haystack.like(literal("%=") + pattern + literal("=%"), escape="\\"),
        )
    if "*" in value or "?" in value:
        return column.like(_like(value), escape="\\")  # type: ignore[no-any-return]
    return column == value  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Matching:
    """An unordered statement for one search and the column that identifies one answer.

    Rows are ``(study or patient pk, site_id, *values of attributes_at(level), *extra)``,
    where ``extra`` is the series pk (series level), the series and instance pks (instance
    level) or the number of the patient's studies (patient level); ``key`` orders and pages
    them (keyset paging for answers streamed in batches).
    """

    statement: Select[Any]
    key: Any
    attributes: tuple[Attribute, ...]


def matching_statement(
    level: Level,
    matches: tuple[tuple[Attribute, str], ...],
    scope: Scope,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> Matching:
    """What a search at ``level`` with these matching keys finds within ``scope``: studies of
    sites outside the scope are not found at all (no existence leak)."""
    attributes = attributes_at(level)
    columns = [a.column for a in attributes]
    statement: Select[Any]
    if level == "patient":
        # A patient is one site's (site, patient ID); its values are matched on its studies'
        # rows, so the grouped values are the same on every row (max picks one portably).
        statement = (
            select(Patient.id, Patient.site_id, *(func.max(c) for c in columns), func.count(func.distinct(Study.id)))
            .select_from(Patient)
            .join(Study, Study.patient_pk == Patient.id)
            .group_by(Patient.id, Patient.site_id)
        )
        key: Any = Patient.id
    else:
        statement = select(Study.id, Study.site_id, *columns).join(Patient, Patient.id == Study.patient_pk)
        key = Study.id
    if level in {"series", "instance"}:
        statement = statement.join(Series, Series.study_pk == Study.id).add_columns(Series.id)
        key = Series.id
    if level == "instance":
        statement = (
            statement.join(Instance, Instance.series_pk == Series.id)
            .where(Instance.is_current.is_(True))
            .add_columns(Instance.id)
        )
        key = Instance.id
    visible = scope.condition(Study.site_id, Study.study_uid)
    if visible is not None:
        statement = statement.where(visible)
    if study_uid is not None:
        statement = statement.where(Study.study_uid == study_uid)
    if series_uid is not None:
        statement = statement.where(Series.series_uid == series_uid)
    for attribute, value in matches:
        statement = statement.where(condition(attribute, value))
    return Matching(statement, key, attributes)
