"""QIDO-RS matching (PS3.18 10.6, PS3.4 C.2.2.2) on the index's columns — no framework here.

``parse_query`` turns query parameters into ``Query`` (or raises ``QueryError`` with a message
for the 400 answer); ``search`` runs it against the index, within the caller's scope, and gives
DICOM JSON model objects. Answers come from the index only; ``includefield`` values come from
the stored header JSON of one instance of each result (never from the objects).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from pacs.headers import instance_header
from pacs.identity.users import Scope
from pacs.index.models import Instance, Series, Study
from pacs.query import (
    BY_KEYWORD,
    BY_TAG,
    Attribute,
    QueryError,
    attributes_at,
    check_match,
    matching_keys,
    matching_statement,
)

__all__ = ["Level", "Query", "QueryError", "Result", "parse_query", "search"]

Level = Literal["study", "series", "instance"]
DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
CONTROL = {"limit", "offset", "includefield", "fuzzymatching"}


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
        if attribute is None:
            raise QueryError(f"{name} is not a matching key here; keys: {', '.join(matching_keys(level))}")
        check_match(name, attribute, value, level)
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


def _non_negative(name: str, value: str) -> int:
    if not value.isdigit():
        raise QueryError(f"{name} must be a whole number ≥ 0, not {value!r}")
    return int(value)


def _statement(query: Query, scope: Scope) -> Select[Any]:
    matching = matching_statement(
        query.level, query.matches, scope, study_uid=query.study_uid, series_uid=query.series_uid
    )
    order: list[Any] = [Study.study_date.desc(), Study.id.desc()]
    if query.level in {"series", "instance"}:
        order += [Series.series_number, Series.id]
    if query.level == "instance":
        order += [Instance.instance_number, Instance.id]
    return matching.statement.order_by(*order).limit(query.limit).offset(query.offset)


@dataclass
class Result:
    study_uid: str
    series_uid: str | None
    sop_instance_uid: str | None
    site_id: int
    dataset: dict[str, Any] = field(default_factory=dict)


def search(session: Session, query: Query, scope: Scope, *, base_url: str) -> list[Result]:
    """The matching studies, series or instances within ``scope``, as DICOM JSON model objects."""
    attributes = attributes_at(query.level)
    # An includefield the index already answers at this level (StudyDescription of a study…)
    # needs no stored header: only the others are looked up.
    answered = {a.tag for a in attributes}
    extra = tuple(tag for tag in query.include if tag not in answered)
    if extra != query.include:
        query = replace(query, include=extra)
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
    else:
        # The first current instance of each series, found by an index seek per series rather
        # than by grouping all of a study's instances (measured: 10 ms for 100 CT studies).
        first = (
            select(Instance.id)
            .where(Instance.series_pk == Series.id, Instance.is_current.is_(True))
            .order_by(Instance.id)
            .limit(1)
            .scalar_subquery()
        )
        if query.level == "series":
            pick = select(Series.id.label("key"), first.label("instance_pk")).where(Series.id.in_(level_of.values()))
        else:
            first_series = (
                select(func.min(Series.id)).where(Series.study_pk.in_(level_of.values())).group_by(Series.study_pk)
            )
            pick = select(Series.study_pk.label("key"), first.label("instance_pk")).where(Series.id.in_(first_series))
    chosen = {key: instance_pk for key, instance_pk in session.execute(pick)}
    headers = _headers(session, list(chosen.values()), None if query.include_all else query.include)
    for index, pk in level_of.items():
        header = headers.get(chosen.get(pk, -1))
        if header is None:
            continue
        wanted = header.keys() if query.include_all else query.include
        dataset = results[index].dataset
        for tag in wanted:
            element = header.get(tag)
            if tag not in dataset and element is not None and "BulkDataURI" not in element:
                dataset[tag] = element
        results[index].dataset = dict(sorted(dataset.items()))


def _headers(session: Session, pks: list[int], tags: tuple[str, ...] | None) -> dict[int, dict[str, Any]]:
    """The stored headers of instances ``pks`` — only ``tags`` of them when given: the database
    extracts those elements, which spares parsing every 4 kB header in Python (measured: 20 ms
    for 100 studies with includefield)."""
    if tags is None:
        return {i.id: instance_header(i) for i in session.scalars(select(Instance).where(Instance.id.in_(pks)))}
    columns = [Instance.header[tag] for tag in tags]
    found: dict[int, dict[str, Any]] = {}
    unbuilt = []
    for pk, built, *elements in session.execute(
        select(Instance.id, Instance.header.is_not(None), *columns).where(Instance.id.in_(pks))
    ):
        if built:
            found[pk] = {tag: element for tag, element in zip(tags, elements, strict=True) if element is not None}
        else:
            unbuilt.append(pk)
    if unbuilt:
        found.update(_headers(session, unbuilt, None))
    return found


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
