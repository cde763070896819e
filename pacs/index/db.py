"""Engines and sessions for the index, SQLite (embedded) or PostgreSQL (production)."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, cast

from sqlalchemy import Engine, Table, create_engine, event, insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from pacs.events import ADMINISTRATIVE
from pacs.index.models import AccessRecord, Change
from pacs.index.types import utcnow


class IndexUnavailable(Exception):
    """The database cannot be reached or is locked beyond its busy timeout."""


def _json_text(value: Any) -> str:
    """JSON as stored: UTF-8 text as is (a Chinese name stays 王^小明, not \\u738b…), since
    /metadata serves the stored text verbatim."""
    return json.dumps(value, ensure_ascii=False)


def make_engine(url: str, *, connect_timeout_s: float = 2.0, pool_size: int = 10) -> Engine:
    """An engine configured for durability: SQLite in WAL with ``synchronous=FULL`` and
    ``BEGIN IMMEDIATE``; PostgreSQL with a short connect timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False, "isolation_level": None},
            json_serializer=_json_text,
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        _configure_sqlite(engine)
        return engine
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args = {"connect_timeout": max(1, int(connect_timeout_s))}
        # A statement that waits on a dead peer must not hold a C-STORE for minutes.
        connect_args["options"] = "-c statement_timeout=15000 -c lock_timeout=10000"
    return create_engine(
        url,
        connect_args=connect_args,
        json_serializer=_json_text,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=5,
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed transaction survives power loss, which "Success" promises.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # FIELD-NOTES: the default deferred BEGIN gave 1,531 "database is locked" errors when
        # four processes took leases; IMMEDIATE takes the write lock up front and waits. A
        # transaction that only reads (``transaction(..., read_only=True)``) begins deferred:
        # in WAL it then reads a snapshot beside the writer instead of queueing behind its fsync.
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


READ_ONLY = "yunying_read_only"


@contextmanager
def transaction(sessions: sessionmaker[Session], *, read_only: bool = False) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error; connection errors become
    ``IndexUnavailable``. ``read_only``: the work only reads (on SQLite it then does not take
    the write lock; a write in it may fail with "database is locked")."""
    session = sessions()
    try:
        with session.begin():
            if read_only:
                session.connection(execution_options={READ_ONLY: True})
            yield session
    except (OperationalError, DBAPIError) as exc:
        if isinstance(exc, OperationalError) or exc.connection_invalidated:
            raise IndexUnavailable(str(exc).splitlines()[0]) from exc
        raise
    finally:
        session.close()


_INSERT_CHANGE = insert(cast(Table, Change.__table__))


def append_change(
    session: Session,
    kind: str,
    *,
    study_uid: str | None = None,
    site_id: int | None = None,
    actor: str | None = None,
    **payload: Any,
) -> None:
    """Append one event to the change log, in the caller's transaction (a Core INSERT: no ORM
    object to flush — measured on the C-STORE path)."""
    at = utcnow()
    row = {"kind": kind, "at": at, "study_uid": study_uid, "site_id": site_id, "actor": actor, "payload": payload}
    session.connection().execute(_INSERT_CHANGE, row)
    if kind in ADMINISTRATIVE:
        session.connection().execute(_INSERT_ACCESS, _administrative_record(session, kind, at, site_id, actor, payload))


_INSERT_ACCESS = insert(cast(Table, AccessRecord.__table__))
AUDIT_ACTOR: Final = "audit_actor"  # Session.info key: the AuditActor behind a request's changes


@dataclass(frozen=True)
class AuditActor:
    """Who makes a request's administrative changes, and from where: put in
    ``session.info[AUDIT_ACTOR]`` by the API (the CLI leaves it out and is audited as
    ``cli:<login>``)."""

    user_id: int | None
    username: str
    role: str
    source: str | None


def login() -> str:
    """The operating-system login running a command (audited as ``cli:<login>``)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        return "unknown"


def _administrative_record(
    session: Session, kind: str, at: datetime, site_id: int | None, actor: str | None, payload: dict[str, Any]
) -> dict[str, Any]:
    who = session.info.get(AUDIT_ACTOR)
    if not isinstance(who, AuditActor):
        username = f"cli:{login()}" if actor in (None, "cli") else str(actor)
        who = AuditActor(None, username, "operator", "local")
    return {
        "at": at,
        "user_id": who.user_id,
        "username": who.username,
        "role": who.role,
        "action": kind,
        "study_uid": None,
        "patient_id": None,
        "site_id": site_id,
        "source": who.source,
        "outcome": "success",
        "detail": payload,
    }
