"""Writing a planned QA history (``datasets/qa_history.py``) into an index.

The consortiums, sites, readers, grants and rosters go through the real administration
functions (``pacs.identity``, ``reading.admin``): they are few. The studies, reading tasks and
the change log are bulk-inserted — ``COPY`` on PostgreSQL, executemany on SQLite — in the
order the system would have written them: events in time order across studies (a night
study's morning claim waits for the morning), so ``changes.seq`` follows the clock. Task rows
are written as they stand at the end of the history. Reports and deliveries have no rows:
their ids appear only in event payloads, which is all the turnaround figures read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from datasets.qa_history import HistorySpec, Ids, history, identity
from pacs.identity.sites import add_site
from pacs.index.models import Base, Change, Consortium, Patient, Site, Study
from reading.admin import add_reader, parse_window, set_roster
from reading.models import ReadingTask, Report

_TABLES = (("patient", Patient), ("study", Study), ("reading_task", ReadingTask))


@dataclass
class Loaded:
    studies: int = 0
    tasks: int = 0
    changes: int = 0


def create_identity(session: Session, spec: HistorySpec) -> Ids:
    """Add the history's consortiums, sites and readers (with grants and rosters); returns the
    ids the plan refers to, its own rows numbered after the index's."""
    plan = identity(spec)
    for site in plan.sites:
        add_site(session, consortium=site.consortium, name=site.name, tier=site.tier, actor="qa-history")
    session.flush()
    for consortium in session.scalars(select(Consortium).where(Consortium.name.in_(plan.consortiums))):
        consortium.timezone = spec.timezone
    readers: dict[str, int] = {}
    for reader in plan.readers:
        readers[reader.username] = add_reader(
            session,
            username=reader.username,
            consortium=reader.consortium,
            tier=reader.tier,
            modalities=reader.modalities,
            reads_for_sites=reader.sites,
            display_name=reader.display_name,
            actor="qa-history",
        ).id
        set_roster(session, reader.username, [parse_window(w) for w in reader.roster], actor="qa-history")
    session.flush()
    consortiums = dict(
        session.execute(select(Consortium.name, Consortium.id).where(Consortium.name.in_(plan.consortiums))).all()
    )
    sites = {
        (name, site): site_id
        for name, site, site_id in session.execute(
            select(Consortium.name, Site.name, Site.id)
            .join(Consortium, Consortium.id == Site.consortium_id)
            .where(Consortium.name.in_(plan.consortiums))
        )
    }

    def after(column: Any) -> int:
        return int(session.scalar(select(func.coalesce(func.max(column), 0))) or 0) + 1

    return Ids(
        consortiums=consortiums,
        sites=sites,
        readers=readers,
        first_patient=after(Patient.id),
        first_study=after(Study.id),
        first_task=after(ReadingTask.id),
        first_report=after(Report.id),
    )


def write_history(
    session: Session,
    spec: HistorySpec,
    ids: Ids,
    *,
    since: datetime | None = None,
    before: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> Loaded:
    """Bulk-insert the studies received in [``since``, ``before``) and the events that happened
    then (both bounds optional: the test writes a history in two parts around a refresh).
    ``progress(n)`` is told of each day's ``n`` studies."""

    def inside(at: datetime) -> bool:
        return (since is None or at >= since) and (before is None or at < before)

    writer = _Writer(session)
    loaded = Loaded()
    pending: list[dict[str, Any]] = []
    zone = ZoneInfo(spec.timezone)
    for n, records in enumerate(history(spec, ids)):
        kept = [r for r in records if inside(r.received_at)]
        writer.rows("patient", [r.patient for r in kept])
        writer.rows("study", [r.study for r in kept])
        tasks = [t for r in kept for t in r.tasks]
        writer.rows("reading_task", tasks)
        pending += [c for r in records for c in r.changes if inside(c["at"])]
        # What happened by the end of this local day is written now, in time order; a night
        # study's morning waits for the next day's batch.
        horizon = datetime.combine(spec.first_day + timedelta(days=n + 1), time(), tzinfo=zone).astimezone(UTC)
        pending.sort(key=lambda c: c["at"])  # stable: a transaction's events keep their order
        cut = next((i for i, c in enumerate(pending) if c["at"] >= horizon), len(pending))
        writer.changes(pending[:cut])
        loaded.changes += cut
        pending = pending[cut:]
        loaded.studies += len(kept)
        loaded.tasks += len(tasks)
        if progress is not None:
            progress(len(records))
    writer.changes(pending)
    loaded.changes += len(pending)
    writer.finish()
    return loaded


class _Writer:
    """COPY on PostgreSQL, executemany on SQLite."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.postgres = session.get_bind().dialect.name == "postgresql"

    def rows(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        columns = [c.name for c in Base.metadata.tables[table].columns if c.name in rows[0]]
        if self.postgres:
            self._copy(table, columns, ([row[c] for c in columns] for row in rows))
        else:
            model = dict(_TABLES)[table]
            self.session.execute(insert(model), [{c: row[c] for c in columns} for row in rows])

    def changes(self, changes: Sequence[dict[str, Any]]) -> None:
        if not changes:
            return
        columns = ["kind", "at", "study_uid", "site_id", "actor", "payload"]
        if self.postgres:
            self._copy("changes", columns, ([c[name] for name in columns] for c in changes))
        else:
            self.session.execute(insert(Change), list(changes))

    def _copy(self, table: str, columns: list[str], rows: Iterable[list[Any]]) -> None:
        raw = self.session.connection().connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v for v in row])

    def finish(self) -> None:
        """Move PostgreSQL's sequences past the ids given explicitly."""
        if not self.postgres:
            return
        for table, _ in _TABLES:
            self.session.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
                )
            )
