"""Study completeness at the centre: the manifest a clinic edge sends of each study it forwards
(SOP Instance UID → the instance's content digest: the sha256 of its data set after group 0002
in native form, ``Instance.content_digest``, pacs/lossless.py), and the check that every listed
instance is here with that content — in the bytes the modality sent, or in the JPEG-LS Lossless
copy an edge compressed in transit, which decodes to them. For a native instance the digest is
``Instance.sha256``, so manifests recorded before compression in transit keep their meaning.

A study of a site ``held_for_manifest`` turns stable only once its manifest is satisfied
(``pacs.stability``): a link outage longer than the quiet period then never sends half a study
to AI and reading. Should no manifest ever come (the site also pushed straight from a modality),
the study turns stable after ``manifest_wait_s`` all the same, flagged ``manifest: missing``.

Why an API call rather than Storage Commitment (PS3.4 Annex J): N-ACTION lists UIDs without a
digest, so the centre could confirm an instance it holds with other bytes; and its answer, the
N-EVENT-REPORT, comes on an association the centre opens or that the edge must keep open — a
clinic behind NAT accepts none. The edge already calls the centre over HTTPS with its site token
(STOW, reports), and this call answers in the same request what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs.index.db import append_change
from pacs.index.models import Instance, Series, Site, Study, StudyManifest

MANIFEST_RECEIVED: Final = "study.manifest_received"
MANIFEST_SATISFIED: Final = "study.manifest_satisfied"
MAX_INSTANCES: Final = 100_000


class ManifestRefused(ValueError):
    """A manifest that cannot be accepted: the message names why."""


@dataclass(frozen=True)
class ManifestCheck:
    study_uid: str
    expected: int
    satisfied: bool
    missing: list[str]
    mismatched: list[str]  # here, but with other bytes (the centre quarantined the other copy)


def check(session: Session, manifest: StudyManifest) -> ManifestCheck:
    """Compare the manifest with what the index holds now."""
    held = dict(
        session.execute(
            select(Instance.sop_instance_uid, Instance.content_digest)
            .join(Series, Series.id == Instance.series_pk)
            .join(Study, Study.id == Series.study_pk)
            .where(Study.study_uid == manifest.study_uid, Instance.is_current.is_(True))
        ).all()
    )
    missing = sorted(uid for uid in manifest.instances if uid not in held)
    mismatched = sorted(uid for uid, digest in manifest.instances.items() if uid in held and held[uid] != digest)
    return ManifestCheck(
        manifest.study_uid, len(manifest.instances), not missing and not mismatched, missing, mismatched
    )


def record_manifest(
    session: Session, *, site_id: int, study_uid: str, instances: dict[str, str], now: datetime
) -> ManifestCheck:
    """Record (or replace: the study grew at the clinic) the manifest of ``study_uid`` sent by
    ``site_id``'s edge and check it at once. Raises ``ManifestRefused`` for an empty manifest,
    a malformed digest, or a study another site owns."""
    if not instances:
        raise ManifestRefused("a manifest lists at least one instance")
    if len(instances) > MAX_INSTANCES:
        raise ManifestRefused(f"a manifest lists at most {MAX_INSTANCES} instances")
    for uid, digest in instances.items():
        if not uid or len(uid) > 64 or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ManifestRefused(f"instance {uid[:64]!r}: expected a UID and a lowercase hex sha256")
    owner = session.scalar(select(Study.site_id).where(Study.study_uid == study_uid))
    if owner is not None and owner != site_id:
        raise ManifestRefused(f"no study {study_uid} of your site")  # nothing leaks about the other site
    manifest = session.scalar(select(StudyManifest).where(StudyManifest.study_uid == study_uid))
    if manifest is None:
        manifest = StudyManifest(study_uid=study_uid, site_id=site_id, received_at=now)
        session.add(manifest)
    elif manifest.site_id != site_id:
        raise ManifestRefused(f"no study {study_uid} of your site")
    changed = manifest.instances != instances
    manifest.instances = dict(instances)
    manifest.num_instances = len(instances)
    manifest.received_at = now
    if changed:
        manifest.satisfied_at = None
        append_change(session, MANIFEST_RECEIVED, study_uid=study_uid, site_id=site_id, instances=len(instances))
    session.flush()
    result = check(session, manifest)
    if result.satisfied:
        mark_satisfied(session, manifest, now=now)
    return result


def mark_satisfied(session: Session, manifest: StudyManifest, *, now: datetime) -> None:
    if manifest.satisfied_at is None:
        manifest.satisfied_at = now
        append_change(
            session,
            MANIFEST_SATISFIED,
            study_uid=manifest.study_uid,
            site_id=manifest.site_id,
            instances=manifest.num_instances,
        )


def held_back(session: Session, study_pk: int, site_id: int, *, now: datetime) -> bool:
    """True while ``study_pk`` must wait for its manifest: its site sends through an edge and
    no manifest of it is satisfied yet. Checks (and records) satisfaction on the way."""
    if not session.scalar(select(Site.held_for_manifest).where(Site.id == site_id)):
        return False
    study_uid = session.scalar(select(Study.study_uid).where(Study.id == study_pk))
    manifest = session.scalar(select(StudyManifest).where(StudyManifest.study_uid == study_uid))
    if manifest is None:
        return True
    if manifest.satisfied_at is not None:
        return False
    if check(session, manifest).satisfied:
        mark_satisfied(session, manifest, now=now)
        return False
    return True
