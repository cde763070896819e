"""What every ``/api`` route shares: the caller, the reading settings, one table from the
core's refusals to HTTP statuses, and a transaction that answers 503 when the index is down."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from pacs.dicomweb.auth import Authenticated, client_address, services_of
from pacs.identity.sites import IdentityError
from pacs.identity.users import Principal
from pacs.index.db import AUDIT_ACTOR, AuditActor, IndexUnavailable, transaction
from pacs.index.models import Role, Study
from pacs.index.types import utcnow
from reading.errors import Conflict, Invalid, NotFound, OutOfScope, ReadingError, ReadRefused, Refused
from reading.models import Reader, ReadingTask
from reading.settings import ReadingSettings
from reading.worklist.readers import reader_of_user
from reading.worklist.tasks import may_read
from reading.worklist.transitions import IllegalTransition

STATUS_OF: Final[dict[type[Exception], int]] = {
    NotFound: 404,
    OutOfScope: 403,
    Conflict: 409,
    IllegalTransition: 409,
    Invalid: 422,
}


def reading_settings(request: Request) -> ReadingSettings:
    settings: ReadingSettings = request.app.state.reading_settings
    return settings


@contextmanager
def unit_of_work(request: Request, *, read_only: bool = False) -> Iterator[Session]:
    """One transaction for one request; the core's refusals become their HTTP status (nothing
    is written then: the transaction rolls back)."""
    try:
        with transaction(services_of(request).sessions, read_only=read_only) as session:
            who: Principal | None = getattr(request.state, "principal", None)
            if who is not None:
                source = client_address(request)
                session.info[AUDIT_ACTOR] = AuditActor(who.user_id, who.username, who.role, source)
            yield session
    except IndexUnavailable:
        raise HTTPException(503, "index unavailable; retry shortly", headers={"Retry-After": "5"}) from None
    except Refused:
        raise  # the route answers it with its code (refused)
    except (ReadingError, IllegalTransition) as exc:
        if isinstance(exc, ReadRefused):
            _audit_refusal(request, exc)
        status = next((code for kind, code in STATUS_OF.items() if isinstance(exc, kind)), 400)
        raise HTTPException(status, str(exc)) from None


def refused(exc: IdentityError | Refused) -> JSONResponse:
    """An administrative refusal as 422: ``detail`` in English for whoever reads the raw answer;
    ``code``, ``field`` and ``params`` for a page to say it in its user's language (its
    catalogues' ``error.<code>``) beside the input at fault. The transaction has rolled back."""
    return JSONResponse(
        {"detail": str(exc), "code": exc.code, "field": exc.field, "params": exc.params}, status_code=422
    )


def _audit_refusal(request: Request, refusal: ReadRefused) -> None:
    """A task refused to an authenticated caller, as a denied access record (the caller is
    known: a 401 never gets here)."""
    who: Principal | None = getattr(request.state, "principal", None)
    if who is None:
        return
    services_of(request).audit.record(
        who,
        "open-task",
        outcome="denied",
        study_uid=refusal.study_uid,
        patient_id=refusal.patient_id,
        site_id=refusal.site_id,
        source=client_address(request),
        task_id=refusal.task_id,
        path=request.url.path,
        reason=str(refusal),
    )


def _role_refusal(who: Principal, roles: tuple[str, ...]) -> str | None:
    return None if who.role in roles else f"this needs the role {' or '.join(roles)}; you are {who.role}"


def require_role(who: Principal, *roles: str) -> None:
    why = _role_refusal(who, roles)
    if why is not None:
        raise HTTPException(403, why)


def _caller_of(*roles: str) -> Callable[[Principal], Principal]:
    def caller(who: Authenticated) -> Principal:
        require_role(who, *roles)
        return who

    return caller


# A route's caller, of the roles it serves. As a dependency the role is checked before the route's
# path, query and body are validated: someone of another role is answered 403, never a 422 that
# tells him what the route takes (default-deny; tests/viewer/test_role_matrix.py).
AdminCaller = Annotated[Principal, Depends(_caller_of(Role.ADMIN))]
QaCaller = Annotated[Principal, Depends(_caller_of(Role.QA, Role.ADMIN))]
ReaderCaller = Annotated[Principal, Depends(_caller_of(Role.READER))]
SiteCaller = Annotated[Principal, Depends(_caller_of(Role.SITE))]


def require_site_user(who: Principal) -> int:
    require_role(who, Role.SITE)
    if who.site_id is None:
        raise HTTPException(403, "your site user is not bound to a site")
    return who.site_id


EXPORT_FORMATS: Final = frozenset({"csv", "xlsx", "pdf"})


def audited_export(request: Request, who: Authenticated) -> Iterator[None]:
    """A download of QA figures (``format=csv|xlsx|pdf``, or the monthly report) is an access
    record ``export`` naming the route and query, with its outcome — written after the answer
    is prepared, off the request path."""
    fmt = request.query_params.get("format")
    if fmt not in EXPORT_FORMATS and not request.url.path.endswith("/report"):
        yield
        return
    outcome = "success"
    try:
        yield
    except HTTPException as exc:
        outcome = "denied" if exc.status_code in (401, 403) else "error"
        raise
    finally:
        services_of(request).audit.record(
            who,
            "export",
            outcome=outcome,
            source=client_address(request),
            path=request.url.path,
            format=fmt or "pdf",
            query=str(request.query_params)[:300],
        )


def check_may_read(session: Session, who: Principal, task: ReadingTask, *, reader: Reader | None = None) -> Reader:
    """The one rule of who may open ``task`` (``GET /api/tasks/{id}``, its priors, AI findings
    and reports): a reader who may read it (``reading.worklist.tasks.may_read``). Returns his
    reader profile (``reader``: the caller's, already looked up); otherwise ``ReadRefused``, a
    403 that ``unit_of_work`` records as a denied access."""
    why = _role_refusal(who, (Role.READER,))
    if why is None:
        try:
            reader = reader or reader_of_user(session, who.user_id)
        except OutOfScope as exc:
            why = str(exc)
        else:
            why = may_read(session, reader, task, now=utcnow())
    if why is None and reader is not None:
        return reader
    study = session.get(Study, task.study_pk)
    raise ReadRefused(
        why or "refused",
        task_id=task.id,
        study_uid=task.study_uid,
        patient_id=study.patient_id if study else None,
        site_id=task.site_id,
    )
