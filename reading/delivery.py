"""Getting signed reports back to the originating site.

Signing inserts a ``delivery`` row in its own transaction (``queue_deliveries``). The delivery
worker takes due rows with a lease, builds the report's DICOM objects (SR, Encapsulated PDF and,
where the site asked for it, a rendered image), C-STOREs them to the site's return destination
and records every attempt. A delivery is *delivered* only when every object got Success; any
other outcome keeps it pending with the error, retried with a doubling backoff, for as long as it
takes (DESIGN.md: retried until acknowledged). A site without a reachable return destination
pulls its reports over the API and acknowledges them.
"""

from __future__ import annotations

import socket
import threading
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from pacs.index.db import IndexUnavailable, append_change, transaction
from pacs.index.models import Site
from pacs.index.types import utcnow
from reading import events
from reading.errors import NotFound
from reading.models import Delivery, DeliveryAttempt, DeliveryState, Report

log = structlog.get_logger(__name__)


def queue_deliveries(session: Session, report: Report, site: Site, *, now: datetime) -> Delivery:
    """One delivery of a signed report version to ``site``, in the signing transaction. The
    return destination is copied as it is now; a site without one pulls (``awaiting_pull``)."""
    pushes = bool(site.return_ae_title and site.return_host and site.return_port)
    delivery = Delivery(
        report_id=report.id,
        site_id=site.id,
        study_uid=report.study_uid,
        state=DeliveryState.PENDING if pushes else DeliveryState.AWAITING_PULL,
        ae_title=site.return_ae_title,
        host=site.return_host,
        port=site.return_port,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(delivery)
    session.flush()
    append_change(
        session,
        events.DELIVERY_QUEUED,
        study_uid=report.study_uid,
        site_id=site.id,
        actor="reading",
        delivery_id=delivery.id,
        report_id=report.id,
        version=report.version,
        destination=f"{site.return_ae_title}@{site.return_host}:{site.return_port}" if pushes else "site pulls",
    )
    return delivery


def take_due(sessions: sessionmaker[Session], worker: str, *, lease: timedelta, now: datetime) -> int | None:
    """Lease the next due delivery to ``worker``; its id, or None. The guarded UPDATE lets one
    worker win (PostgreSQL: the candidate row is locked with SKIP LOCKED first)."""
    with transaction(sessions) as session:
        statement = (
            select(Delivery.id)
            .where(
                Delivery.state == DeliveryState.PENDING,
                Delivery.next_attempt_at <= now,
                or_(Delivery.lease_expires_at.is_(None), Delivery.lease_expires_at <= now),
            )
            .order_by(Delivery.next_attempt_at, Delivery.id)
            .limit(1)
        )
        if session.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        delivery_id = session.scalar(statement)
        if delivery_id is None:
            return None
        taken = cast(
            CursorResult[Any],
            session.execute(
                update(Delivery)
                .where(
                    Delivery.id == delivery_id,
                    Delivery.state == DeliveryState.PENDING,
                    or_(Delivery.lease_expires_at.is_(None), Delivery.lease_expires_at <= now),
                )
                .values(lease_owner=worker, lease_expires_at=now + lease)
            ),
        ).rowcount
        return int(delivery_id) if taken else None


def stored(status: int | None) -> bool:
    """PS3.4 B.2.3: Success, or a Warning (0xB000 coercion, 0xB006 elements discarded, 0xB007
    data set does not match the SOP class): the object is stored either way and is not re-sent."""
    return status is not None and (status == 0x0000 or 0xB000 <= status <= 0xBFFF)


def retry_delay(attempts: int, *, first: float, longest: float) -> timedelta:
    return timedelta(seconds=min(longest, first * 2 ** max(0, attempts - 1)))


def record_attempt(
    sessions: sessionmaker[Session],
    delivery_id: int,
    worker: str,
    *,
    statuses: dict[str, int | None],
    error: str | None,
    now: datetime,
    first_retry_s: float,
    longest_retry_s: float,
) -> Delivery:
    """Write one attempt's outcome: delivered when every object was stored (Success, or a
    Warning: ``stored``), else
    pending again after the backoff with the error kept on the delivery."""
    delivered = error is None and bool(statuses) and all(stored(s) for s in statuses.values())
    if not delivered and error is None:  # the association went through, some objects were not stored
        error = "not every object was stored: " + (
            ", ".join(
                f"{uid}: {'no response' if s is None else f'0x{s:04X}'}" for uid, s in statuses.items() if not stored(s)
            )
            or "none was sent"
        )
    with transaction(sessions) as session:
        delivery = session.get_one(Delivery, delivery_id)
        delivery.attempts += 1
        delivery.lease_owner, delivery.lease_expires_at = None, None
        session.add(
            DeliveryAttempt(
                delivery_id=delivery_id,
                at=now,
                worker=worker,
                outcome="delivered" if delivered else "failed",
                error=error,
                statuses={uid: status for uid, status in statuses.items()},
            )
        )
        if delivered:
            delivery.state, delivery.delivered_at, delivery.last_error = DeliveryState.DELIVERED, now, None
            append_change(
                session,
                events.DELIVERY_DELIVERED,
                study_uid=delivery.study_uid,
                site_id=delivery.site_id,
                actor=worker,
                delivery_id=delivery_id,
                report_id=delivery.report_id,
                attempts=delivery.attempts,
            )
        else:
            delivery.last_error = error or "not delivered"
            delivery.next_attempt_at = now + retry_delay(
                delivery.attempts, first=first_retry_s, longest=longest_retry_s
            )
            append_change(
                session,
                events.DELIVERY_ATTEMPT_FAILED,
                study_uid=delivery.study_uid,
                site_id=delivery.site_id,
                actor=worker,
                delivery_id=delivery_id,
                report_id=delivery.report_id,
                attempts=delivery.attempts,
                error=delivery.last_error[:500],
                next_attempt_at=delivery.next_attempt_at.isoformat(),
            )
        return delivery


def acknowledge_pull(session: Session, delivery_id: int, *, site_id: int, by: str, now: datetime) -> Delivery:
    """A site that pulls its reports confirms one arrived."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or delivery.site_id != site_id:
        raise NotFound(f"no delivery {delivery_id} for your site")
    if delivery.state != DeliveryState.DELIVERED:
        delivery.state, delivery.delivered_at = DeliveryState.DELIVERED, now
        append_change(
            session,
            events.DELIVERY_ACKNOWLEDGED,
            study_uid=delivery.study_uid,
            site_id=site_id,
            actor=by,
            delivery_id=delivery_id,
            report_id=delivery.report_id,
        )
    return delivery


class DeliveryWorker:
    """A background thread that delivers due reports, one at a time."""

    def __init__(self, sessions: sessionmaker[Session], settings: Any, *, name: str | None = None) -> None:
        self.sessions = sessions
        self.settings = settings
        self.name = name or f"delivery@{socket.gethostname()}:{threading.get_native_id()}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="delivery-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.deliver_one()
            except IndexUnavailable as exc:
                log.warning("delivery.index_unavailable", error=str(exc))
                worked = False
            except Exception:  # the worker must outlive any one bad delivery
                log.exception("delivery.pass_failed")
                worked = False
            if not worked:
                self._stop.wait(self.settings.delivery_poll_s)

    def deliver_one(self, *, now: datetime | None = None) -> bool:
        """Deliver the next due report, if any; returns whether one was attempted."""
        from pacs.dimse.store_scu import AssociationRefused, send_datasets
        from reading.reports.assemble import delivery_objects

        settings = self.settings
        now = now or utcnow()
        delivery_id = take_due(self.sessions, self.name, lease=timedelta(seconds=settings.delivery_lease_s), now=now)
        if delivery_id is None:
            return False
        statuses: dict[str, int | None] = {}
        error: str | None = None
        try:
            with transaction(self.sessions, read_only=True) as session:
                delivery = session.get_one(Delivery, delivery_id)
                site = session.get_one(Site, delivery.site_id)
                datasets = delivery_objects(session, delivery.report_id, site, centre_name=settings.centre_name)
                destination = (delivery.ae_title or "", delivery.host or "", delivery.port or 0)
        except IndexUnavailable:
            raise  # the lease lapses and another pass retries; nothing to record without an index
        except Exception as exc:  # a report that cannot be built stays visibly undelivered, with why
            log.exception("delivery.build_failed", delivery_id=delivery_id)
            datasets, destination = [], ("", "", 0)
            error = f"the report objects could not be built: {type(exc).__name__}: {exc}"
        if error is None:
            try:
                results = send_datasets(
                    datasets,
                    host=destination[1],
                    port=destination[2],
                    called_ae=destination[0],
                    calling_ae=settings.delivery_ae_title,
                    timeout_s=settings.delivery_timeout_s,
                )
                statuses = {r.sop_instance_uid: r.status for r in results}
            except AssociationRefused as exc:
                error = str(exc)
            except OSError as exc:
                error = f"{destination[0]}@{destination[1]}:{destination[2]} unreachable: {exc}"
        delivery = record_attempt(
            self.sessions,
            delivery_id,
            self.name,
            statuses=statuses,
            error=error,
            now=utcnow(),
            first_retry_s=settings.delivery_retry_s,
            longest_retry_s=settings.delivery_retry_max_s,
        )
        log.info(
            "delivery.attempt",
            delivery_id=delivery_id,
            state=delivery.state,
            error=delivery.last_error,
            attempts=delivery.attempts,
        )
        return True
