"""What a C-FIND answers and what a C-MOVE / C-GET sends, read from the index in batches.

Each batch is its own short transaction, keyed after the last row of the one before (keyset
paging): a big answer is never one list in memory, and no transaction stays open while a slow
peer reads the answers — on SQLite every transaction takes the write lock (BEGIN IMMEDIATE),
so one held across a C-FIND would stall every C-STORE.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import Session, sessionmaker

from pacs.identity.users import Scope
from pacs.index.db import transaction
from pacs.index.models import Instance, Study
from pacs.query import Attribute, Matching, matching_statement

BATCH = 100


def paged(sessions: sessionmaker[Session], matching: Matching, *, batch: int = BATCH) -> Iterator[Row[Any]]:
    """The rows of ``matching`` in key order, ``batch`` at a time; the key is appended as the
    last column. Raises ``IndexUnavailable`` when a batch cannot be read."""
    statement = matching.statement.add_columns(matching.key).order_by(matching.key).limit(batch)
    last: Any = None
    while True:
        page = statement if last is None else statement.where(matching.key > last)
        with transaction(sessions) as session:
            rows = session.execute(page).all()
        yield from rows
        if len(rows) < batch:
            return
        last = rows[-1][-1]


@dataclass(frozen=True)
class Selected:
    """One current instance to send, with what its audit record needs."""

    instance_id: int
    object_key: str
    dataset_offset: int
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    study_uid: str
    site_id: int
    patient_id: str | None


def _instances(matches: tuple[tuple[Attribute, str], ...], scope: Scope) -> Select[Any]:
    # The same matcher as C-FIND at IMAGE level, with only the columns a sub-operation needs.
    base = matching_statement("instance", matches, scope).statement
    columns = base.with_only_columns(
        Instance.id,
        Instance.object_key,
        Instance.dataset_offset,
        Instance.sop_class_uid,
        Instance.sop_instance_uid,
        Instance.transfer_syntax_uid,
        Study.study_uid,
        Study.site_id,
        Study.patient_id,
    )
    return cast("Select[Any]", columns)


def count_instances(session: Session, matches: tuple[tuple[Attribute, str], ...], scope: Scope) -> int:
    subquery = _instances(matches, scope).subquery()
    return int(session.scalar(select(func.count()).select_from(subquery)) or 0)


def stored_syntaxes(session: Session, matches: tuple[tuple[Attribute, str], ...], scope: Scope) -> set[tuple[str, str]]:
    """The (SOP class, stored transfer syntax) pairs of the selection: the presentation
    contexts a C-MOVE proposes to its destination."""
    subquery = _instances(matches, scope).subquery()
    pairs = session.execute(select(subquery.c.sop_class_uid, subquery.c.transfer_syntax_uid).distinct())
    return {(str(sop_class), str(syntax)) for sop_class, syntax in pairs}


def selected_instances(
    sessions: sessionmaker[Session],
    matches: tuple[tuple[Attribute, str], ...],
    scope: Scope,
    *,
    batch: int = BATCH,
) -> Iterator[Selected]:
    """The current instances the selection names, within ``scope``, in batches by instance id."""
    statement = _instances(matches, scope).order_by(Instance.id).limit(batch)
    last = 0
    while True:
        with transaction(sessions) as session:
            rows = session.execute(statement.where(Instance.id > last)).all()
        for row in rows:
            yield Selected(*row)
        if len(rows) < batch:
            return
        last = rows[-1][0]
