"""The forwarder: takes the edge's queue in order and sends to the centre, one job at a time.

* an instance job: C-STORE (or STOW) the stored bytes; acknowledged → done; refused → failed
  with the centre's reason (the data stays); the link down or busy → back in the queue after a
  backoff with jitter, and the forwarder itself waits that long before trying the link again;
* a manifest job: tell the centre what the study holds; it answers what it still lacks. Lacking
  an instance the edge thinks acknowledged (the centre lost it) re-queues that instance; lacking
  one still queued simply waits.

Only an acknowledged instance is ever marked done, in the transaction that records the answer,
so after a crash or a link loss nothing acknowledged is sent again and nothing unacknowledged is
forgotten (an instance whose Success was lost on the wire is sent again: the centre stores it
once — same UID, same bytes).
"""

from __future__ import annotations

import os
import random
import threading
import time
from datetime import timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pacs.edge import queue
from pacs.edge.centre import CentreApi, CentreRefused, CentreUnreachable
from pacs.edge.links import Link, Outgoing, Sent, SentKind
from pacs.edge.settings import EdgeSettings
from pacs.index.db import IndexUnavailable, append_change, transaction
from pacs.index.models import Instance, Job, JobState, Series, Study
from pacs.index.types import utcnow
from pacs.jobs import LeaseLost, finish_leased, take_leased

log = structlog.get_logger(__name__)

FORWARDED = "edge.forwarded"  # the centre acknowledged an instance
FORWARD_FAILED = "edge.forward_failed"  # the centre refused an instance for good
MANIFEST_CONFIRMED = "edge.manifest_confirmed"  # the centre holds the whole study


def reclaim_leases(sessions: sessionmaker[Session]) -> int:
    """At start, before any forwarder runs: jobs a killed predecessor held are due again at once
    rather than when their lease runs out. One edge process per home, so every held job is one."""
    with transaction(sessions) as session:
        jobs = list(
            session.scalars(
                select(Job).where(Job.kind.in_([queue.FORWARD, queue.MANIFEST]), Job.state == JobState.RUNNING)
            )
        )
        for job in jobs:
            job.state = JobState.PENDING
            job.lease_owner = job.lease_expires_at = None
            job.next_run_at = utcnow()
        return len(jobs)


class Forwarder:
    """One sender: one link (an association, or HTTP requests) taking one job at a time. The
    edge runs ``associations`` of them, so that one's wait for a response (a round trip on the
    line) is another's time to send."""

    def __init__(
        self,
        settings: EdgeSettings,
        sessions: sessionmaker[Session],
        link: Link,
        api: CentreApi,
        *,
        index: int = 0,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.link = link
        self.api = api
        self.rng = rng or random.Random()
        self.owner = f"edge-forwarder-{os.getpid()}-{index}"
        # A lease longer than any one send over a thin line: if this process dies, a restarted
        # one takes the job again once it has run out (pacs/jobs.py).
        self.lease = timedelta(seconds=max(120.0, 2 * settings.dimse_timeout_s))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"edge-forwarder-{index}", daemon=True)
        self._link_failures = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.link.close()

    def _run(self) -> None:
        idle_since = time.monotonic()
        while not self._stop.is_set():
            try:
                worked = self.step()
            except IndexUnavailable as exc:
                log.warning("edge.index_unavailable", error=str(exc))
                worked = False
            except Exception:  # the forwarder must outlive any one bad job
                log.exception("edge.forward_step_failed")
                worked = False
            if worked:
                idle_since = time.monotonic()
                continue
            if time.monotonic() - idle_since > self.settings.idle_release_s:
                self.link.close()
            self._stop.wait(0.2)

    def step(self) -> bool:
        """Take and do one due job; False when none was due (or the link is backing off)."""
        job = take_leased(self.sessions, queue.FORWARD, owner=self.owner, lease=self.lease)
        if job is not None:
            self._forward(job)
            return True
        job = take_leased(self.sessions, queue.MANIFEST, owner=self.owner, lease=self.lease)
        if job is not None:
            self._manifest(job)
            return True
        return False

    # ---------------------------------------------------------------- instances

    def _outgoing(self, session: Session, job: Job) -> Outgoing | None:
        row = session.execute(
            select(Instance, Study.study_uid)
            .join(Series, Series.id == Instance.series_pk)
            .join(Study, Study.id == Series.study_pk)
            .where(Instance.sop_instance_uid == job.payload["sop_instance_uid"], Instance.is_current.is_(True))
        ).first()
        if row is None:
            return None
        instance, study_uid = row
        return Outgoing(
            study_uid,
            instance.sop_instance_uid,
            instance.sop_class_uid,
            instance.transfer_syntax_uid,
            instance.object_key,
            instance.dataset_offset,
            instance.size,
        )

    def _forward(self, job: Job) -> None:
        with transaction(self.sessions, read_only=True) as session:
            outgoing = self._outgoing(session, job)
        if outgoing is None:
            self._give_back(job, Sent(SentKind.REFUSED, "the instance is no longer in the edge's index"))
            return
        started = time.monotonic()
        sent = self.link.send(outgoing)
        if sent.kind is SentKind.ACKNOWLEDGED:
            self._link_failures = 0
            try:
                with transaction(self.sessions) as session:
                    finish_leased(session, job.id, owner=self.owner)
                    append_change(
                        session,
                        FORWARDED,
                        study_uid=outgoing.study_uid,
                        sop_instance_uid=outgoing.sop_instance_uid,
                        seconds=round(time.monotonic() - started, 3),
                        transfer_syntax=sent.transfer_syntax,
                        bytes=sent.size,
                    )
            except LeaseLost:
                log.warning("edge.lease_lost", job=job.id)
            return
        self._give_back(job, sent, study_uid=outgoing.study_uid, sop_instance_uid=outgoing.sop_instance_uid)

    def _give_back(self, job: Job, sent: Sent, **context: str) -> None:
        now = utcnow()
        with transaction(self.sessions) as session:
            row = session.get_one(Job, job.id)
            if row.state != JobState.RUNNING or row.lease_owner != self.owner:
                return
            row.last_error = sent.reason[:2000]
            row.lease_owner = row.lease_expires_at = None
            row.updated_at = now
            if sent.kind is SentKind.REFUSED:
                row.state = JobState.FAILED
                append_change(
                    session,
                    FORWARD_FAILED,
                    study_uid=context.get("study_uid"),
                    sop_instance_uid=context.get("sop_instance_uid"),
                    reason=sent.reason,
                )
                log.warning("edge.refused", reason=sent.reason, **context)
                return
            self._link_failures += 1
            delay = queue.retry_delay(
                self._link_failures,
                initial_s=self.settings.retry_initial_s,
                max_s=self.settings.retry_max_s,
                jitter=self.settings.retry_jitter,
                rng=self.rng,
            )
            row.state = JobState.PENDING
            row.next_run_at = now + timedelta(seconds=delay)
        log.info("edge.retry_later", reason=sent.reason, delay_s=round(delay, 2), **context)
        # The link is shared by every job: wait it out here instead of failing each job in turn.
        self._stop.wait(delay)

    # ---------------------------------------------------------------- manifests

    def _manifest(self, job: Job) -> None:
        study_uid = str(job.payload["study_uid"])
        with transaction(self.sessions, read_only=True) as session:
            instances = dict(
                session.execute(
                    select(Instance.sop_instance_uid, Instance.content_digest)
                    .join(Series, Series.id == Instance.series_pk)
                    .join(Study, Study.id == Series.study_pk)
                    .where(Study.study_uid == study_uid, Instance.is_current.is_(True))
                ).all()
            )
        try:
            answer = self.api.send_manifest(study_uid, instances)
        except CentreUnreachable as exc:
            self._give_back(job, Sent(SentKind.RETRY, f"manifest: {exc}"), study_uid=study_uid)
            return
        except CentreRefused as exc:
            self._give_back(job, Sent(SentKind.REFUSED, f"manifest refused: {exc}"), study_uid=study_uid)
            return
        self._link_failures = 0
        if answer.satisfied:
            with transaction(self.sessions) as session:
                try:
                    finish_leased(session, job.id, owner=self.owner)
                except LeaseLost:
                    return
                append_change(session, MANIFEST_CONFIRMED, study_uid=study_uid, instances=len(instances))
            log.info("edge.manifest_confirmed", study_uid=study_uid, instances=len(instances))
            return
        if answer.mismatched:
            reason = (
                f"the centre holds other content for {len(answer.mismatched)} instance(s) of this study "
                f"(e.g. {answer.mismatched[0]}): see `yunying quarantine list` at the centre"
            )
            self._give_back(job, Sent(SentKind.REFUSED, reason), study_uid=study_uid)
            return
        now = utcnow()
        with transaction(self.sessions) as session:
            resent = queue.requeue(session, answer.missing, now=now)
            row = session.get_one(Job, job.id)
            if row.state != JobState.RUNNING or row.lease_owner != self.owner:
                return
            row.state = JobState.PENDING
            row.lease_owner = row.lease_expires_at = None
            row.last_error = f"the centre still lacks {len(answer.missing)} instance(s)"
            # Ask again once the queue had time to send what is missing; not in step with the link backoff.
            row.next_run_at = now + timedelta(seconds=min(self.settings.retry_max_s, self.settings.retry_initial_s * 2))
            row.updated_at = now
        if resent:
            log.warning("edge.resending", study_uid=study_uid, instances=resent)
