"""QIDO-RS matching (PS3.18 10.6, PS3.4 C.2.2.2) on the index's columns — no framework here.

``parse_query`` turns query parameters into ``Query`` (or raises ``QueryError`` with a message
for the 400 answer); ``search`` runs it against the index, within the caller's scope, and gives
DICOM JSON model objects. Answers come from the index only; ``includefield`` values come from
the stored header JSON of one instance of each result (never from the objects).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, and_, func, literal, or_, select
from sqlalchemy.orm import Session

from pacs.headers import instance_header
from pacs.identity.users import Scope
from pacs.index.models import Instance, Series, Study

Level = Literal["study", "series", "instance"]
DEFAULT_LIMIT = 200
MAX_LIMIT = 1000


class QueryError(ValueError):
    """A query the server cannot run; the message says what to change."""


@dataclass(frozen=True)
class Attribute:
    keyword: str
    tag: str  # 8 hex digits, upper case, as in the DICOM JSON model
    vr: str
    level: Level
    column: Any  # an ORM column, or None for computed values


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("StudyInstanceUID", "0020000D", "UI", "study", Study.study_uid),
    Attribute("StudyDate", "00080020", "DA", "study", Study.study_date),
    Attribute("StudyTime", "00080030", "TM", "study", Study.study_time),
    Attribute("AccessionNumber", "00080050", "SH", "study", Study.accession_number),
    Attribute("ModalitiesInStudy", "00080061", "CS", "study", Study.modalities),
    Attribute("ReferringPhysicianName", "00080090", "PN", "study", Study.referring_physician),
    Attribute("StudyDescription", "00081030", "LO", "study", Study.study_description),
    Attribute("PatientName", "00100010", "PN", "study", Study.patient_name),
    Attribute("PatientID", "00100020", "LO", "study", Study.patient_id),
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
LEVELS: dict[Level, tuple[Level, ...]] = {
    "study": ("study",),
    "series": ("study", "series"),
    "instance": ("study", "series", "instance"),
}
# Attributes that are not matching keys at all: counts are answered, not matched.
NOT_MATCHABLE = {"NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "NumberOfSeriesRelatedInstances"}
CONTROL = {"limit", "offset", "includefield", "fuzzymatching"}
_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")


@dataclass(frozen=True)
class Query:
    level: Level
    matches: tuple[tuple[Attribute, str], ...] = ()
    include_all: bool = False
    include: tuple[str, ...] = ()  # extra tags (8 hex digits) from the stored header
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    warnings: tuple[str, ...] = ()
    study_uid: str | None = None  # from the path
    series_uid: str | None = None  # from the path


def resolve_attribute(name: str) -> tuple[str, Attribute | None]:
    """(tag, known attribute) for a keyword or 8 hex digits; raises for neither."""
    if name in BY_KEYWORD:
        return BY_KEYWORD[name].tag, BY_KEYWORD[name]
    candidate = name.upper()
    if re.fullmatch(r"[0-9A-F]{8}", candidate):
        return candidate, BY_TAG.get(candidate)
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(name)
    if tag is None:
        raise QueryError(f"{name!r} is neither a DICOM keyword nor a tag of 8 hex digits")
    return f"{tag:08X}", None


def parse_query(
    level: Level,
    params: Iterable[tuple[str, str]],
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> Query:
    matches: list[tuple[Attribute, str]] = []
    include: list[str] = []
    include_all = False
    limit, offset = DEFAULT_LIMIT, 0
    warnings: list[str] = []
    allowed_levels = LEVELS[level]
    for name, value in params:
        if name == "limit":
            limit = _non_negative(name, value)
            if limit > MAX_LIMIT:
                warnings.append(f"limit {limit} is above the maximum; {MAX_LIMIT} used")
                limit = MAX_LIMIT
            continue
        if name == "offset":
            offset = _non_negative(name, value)
            continue
        if name == "fuzzymatching":
            if value.lower() == "true":
                warnings.append("fuzzymatching is not supported; exact and wildcard matching were used")
            continue
        if name == "includefield":
            for item in filter(None, (v.strip() for v in value.split(","))):
                if item == "all":
                    include_all = True
                else:
                    include.append(resolve_attribute(item)[0])
            continue
        _, attribute = resolve_attribute(name)
        if attribute is None or attribute.keyword in NOT_MATCHABLE:
            raise QueryError(f"{name} is not a matching key here; keys: {', '.join(_keys(allowed_levels))}")
        if attribute.level not in allowed_levels:
            raise QueryError(f"{name} is a {attribute.level}-level key and cannot be matched in a {level} search")
        if attribute.vr == "DA":
            _check_range(name, value, _DATE, "YYYYMMDD")
        elif attribute.vr == "TM":
            _check_range(name, value, _TIME, "HHMMSS")
        elif attribute.vr == "IS" and not re.fullmatch(r"-?\d+", value):
            raise QueryError(f"{name} matches whole numbers only, not {value!r}")
        matches.append((attribute, value))
    return Query(
        level,
        tuple(matches),
        include_all,
        tuple(dict.fromkeys(include)),
        limit,
        offset,
        tuple(warnings),
        study_uid,
        series_uid,
    )


def _keys(levels: Sequence[Level]) -> list[str]:
    return [a.keyword for a in ATTRIBUTES if a.level in levels and a.keyword not in NOT_MATCHABLE]


def _non_negative(name: str, value: str) -> int:
    if not value.isdigit():
        raise QueryError(f"{name} must be a whole number ≥ 0, not {value!r}")
    return int(value)


def _check_range(name: str, value: str, pattern: re.Pattern[str], form: str) -> None:
    parts = value.split("-") if "-" in value else [value]
    if len(parts) > 2 or not any(parts) or not all(pattern.match(p) for p in parts if p):
        raise QueryError(f"{name} must be {form}, {form}-{form}, {form}- or -{form}; got {value!r}")


# ---------------------------------------------------------------- matching


def _like(value: str) -> str:
    """A DICOM wildcard pattern (``*``, ``?``) as a LIKE pattern with ``\\`` as escape."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _condition(attribute: Attribute, value: str) -> ColumnElement[bool]:
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
    if attribute.vr == "IS":
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


def _statement(query: Query, scope: Scope) -> Select[Any]:
    levels = LEVELS[query.level]
    columns = [a.column for a in ATTRIBUTES if a.level in levels]
    statement = select(Study.id, Study.site_id, *columns)
    if query.level in {"series", "instance"}:
        statement = statement.join(Series, Series.study_pk == Study.id).add_columns(Series.id)
    if query.level == "instance":
        statement = (
            statement.join(Instance, Instance.series_pk == Series.id)
            .where(Instance.is_current.is_(True))
            .add_columns(Instance.id)
        )
    if scope.site_ids is not None:
        statement = statement.where(Study.site_id.in_(sorted(scope.site_ids)))
    if query.study_uid is not None:
        statement = statement.where(Study.study_uid == query.study_uid)
    if query.series_uid is not None:
        statement = statement.where(Series.series_uid == query.series_uid)
    for attribute, value in query.matches:
        statement = statement.where(_condition(attribute, value))
    order: list[Any] = [Study.study_date.desc(), Study.id.desc()]
    if query.level in {"series", "instance"}:
        order += [Series.series_number, Series.id]
    if query.level == "instance":
        order += [Instance.instance_number, Instance.id]
    return statement.order_by(*order).limit(query.limit).offset(query.offset)


@dataclass
class Result:
    study_uid: str
    series_uid: str | None
    sop_instance_uid: str | None
    site_id: int
    dataset: dict[str, Any] = field(default_factory=dict)


def search(session: Session, query: Query, scope: Scope, *, base_url: str) -> list[Result]:
    """The matching studies, series or instances within ``scope``, as DICOM JSON model objects."""
    levels = LEVELS[query.level]
    attributes = [a for a in ATTRIBUTES if a.level in levels]
    results: list[Result] = []
    representative: dict[int, int] = {}  # result index → its study, series or instance pk
    for row in session.execute(_statement(query, scope)):
        values = row[2 : 2 + len(attributes)]
        by_keyword = dict(zip((a.keyword for a in attributes), values, strict=True))
        dataset = {"00080005": {"vr": "CS", "Value": ["ISO_IR 192"]}}
        for attribute, value in zip(attributes, values, strict=True):
            dataset[attribute.tag] = _element(attribute.vr, value, attribute.keyword)
        study_uid = by_keyword["StudyInstanceUID"]
        url = f"{base_url}/studies/{study_uid}"
        series_uid = by_keyword.get("SeriesInstanceUID")
        sop_uid = by_keyword.get("SOPInstanceUID")
        if series_uid:
            url += f"/series/{series_uid}"
        if sop_uid:
            url += f"/instances/{sop_uid}"
        dataset["00081190"] = {"vr": "UR", "Value": [url]}
        result = Result(study_uid, series_uid, sop_uid, row[1], dict(sorted(dataset.items())))
        results.append(result)
        if query.include or query.include_all:
            representative[len(results) - 1] = row[-1] if query.level != "study" else row[0]
    if representative:
        _include_from_headers(session, query, results, representative)
    return results


def _include_from_headers(session: Session, query: Query, results: list[Result], level_of: Mapping[int, int]) -> None:
    """``includefield`` values from the stored header of one current instance per result
    (``level_of``: result index → the pk of its study, series or instance)."""
    if query.level == "instance":
        pick = select(Instance.id.label("key"), Instance.id.label("instance_pk")).where(
            Instance.id.in_(level_of.values())
        )
    elif query.level == "series":
        pick = (
            select(Instance.series_pk.label("key"), func.min(Instance.id).label("instance_pk"))
            .where(Instance.series_pk.in_(level_of.values()), Instance.is_current.is_(True))
            .group_by(Instance.series_pk)
        )
    else:
        pick = (
            select(Series.study_pk.label("key"), func.min(Instance.id).label("instance_pk"))
            .join(Instance, Instance.series_pk == Series.id)
            .where(Series.study_pk.in_(level_of.values()), Instance.is_current.is_(True))
            .group_by(Series.study_pk)
        )
    chosen = {key: instance_pk for key, instance_pk in session.execute(pick)}
    instances = {i.id: i for i in session.scalars(select(Instance).where(Instance.id.in_(chosen.values())))}
    for index, pk in level_of.items():
        instance = instances.get(chosen.get(pk, -1))
        if instance is None:
            continue
        header = instance_header(instance)
        wanted = header.keys() if query.include_all else query.include
        dataset = results[index].dataset
        for tag in wanted:
            if tag not in dataset and tag in header and "BulkDataURI" not in header[tag]:
                dataset[tag] = header[tag]
        results[index].dataset = dict(sorted(dataset.items()))


def _element(vr: str, value: Any, keyword: str) -> dict[str, Any]:
    if value is None or value == "":
        return {"vr": vr}
    if vr == "PN":
        groups = str(value).split("=")
        name = {k: g for k, g in zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False) if g}
        return {"vr": vr, "Value": [name]}
    if vr in {"IS", "US"}:
        return {"vr": vr, "Value": [int(value)]}
    if keyword == "ModalitiesInStudy":
        return {"vr": vr, "Value": [m for m in str(value).split("\\") if m]}
    return {"vr": vr, "Value": [str(value)]}
