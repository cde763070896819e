"""The access audit's hash chain (pacs/audit_chain.py) on SQLite and PostgreSQL: sealing, and
``verify`` naming every kind of tampering — an edited record, a deleted one, records cut off the
end, a forged one, another key — while retention keeps the surviving chain verifiable and two
sealers never chain a record twice."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select, text, update

from pacs.audit import record_access
from pacs.audit_chain import AuditKey, Search, export_lines, prune, seal, seal_all, search, verify
from pacs.identity.sites import add_site
from pacs.identity.users import Principal, Scope
from pacs.index.db import login, transaction
from pacs.index.models import AccessRecord, AuditSeal
from pacs.index.types import utcnow
from pacs.service import Services
from tests.conftest import BACKENDS

on_both = pytest.mark.parametrize("backend", BACKENDS)

READER = Principal(
    user_id=None, username="li", role="reader", is_service=False, scope=Scope(site_ids=None), token_id=None
)


def _write(services: Services, count: int, *, patient: str = "P0001") -> None:
    for n in range(count):
        record_access(
            services.sessions,
            READER,
            "metadata",
            study_uid=f"1.2.3.{n}",
            patient_id=patient,
            source="10.0.0.7",
            note="王^小明",  # UTF-8 and numbers survive the round trip through JSON / JSONB
            ratio=0.1 * n,
        )


def _verify(services: Services, key: AuditKey | None = None) -> list[str]:
    with transaction(services.sessions, read_only=True) as session:
        verdict = verify(session, key or AuditKey.from_settings(services.settings), chunk=4)
    return [str(p) for p in verdict.problems]


def _id_at(services: Services, place: int) -> int:
    with transaction(services.sessions) as session:
        found = session.scalar(select(AccessRecord.id).where(AccessRecord.chain_seq == place))
    assert found is not None
    return found


@on_both
def test_sealed_records_verify_and_each_kind_of_tampering_is_named(
    make_services: Callable[..., Services], backend: str
) -> None:
    services = make_services(backend)
    key = AuditKey.from_settings(services.settings)
    _write(services, 10)
    with transaction(services.sessions) as session:
        assert verify(session, key).unsealed == 10
    assert seal_all(services.sessions, key) == 10
    assert _verify(services) == []
    with transaction(services.sessions, read_only=True) as session:
        verdict = verify(session, key)
    assert (verdict.checked, verdict.first, verdict.last, verdict.unsealed) == (10, 1, 10, 0)

    # An edited record: only that one is named (its successors verify against its stored digest).
    third = _id_at(services, 3)
    with transaction(services.sessions) as session:
        session.execute(update(AccessRecord).where(AccessRecord.id == third).values(username="someone-else"))
    assert _verify(services) == [f"chain place 3 (record {third}): altered: its content no longer matches its seal"]
    with transaction(services.sessions) as session:
        session.execute(update(AccessRecord).where(AccessRecord.id == third).values(username="li"))
    assert _verify(services) == []

    # A deleted record leaves a gap.
    with transaction(services.sessions) as session:
        session.execute(delete(AccessRecord).where(AccessRecord.chain_seq == 5))
    assert _verify(services) == ["chain place 5: missing: a record was deleted"]

    # Records cut off the end: the checkpoint of the last round names a place that is gone.
    with transaction(services.sessions) as session:
        session.execute(delete(AccessRecord).where(AccessRecord.chain_seq >= 9))
    problems = _verify(services)
    assert problems[0] == "chain place 5: missing: a record was deleted"
    assert problems[1].startswith("chain place 10: sealed on ") and "cut off the end" in problems[1]

    # Clearing a record's seal to edit it is a gap too (and the sealer chains it again at the end).
    with transaction(services.sessions) as session:
        session.execute(update(AccessRecord).where(AccessRecord.chain_seq == 2).values(chain_seq=None, digest=None))
        assert verify(session, key).unsealed == 1
    assert "chain place 2: missing: a record was deleted" in _verify(services)


@on_both
def test_a_forged_record_and_a_foreign_key_are_detected(make_services: Callable[..., Services], backend: str) -> None:
    services = make_services(backend)
    key = AuditKey.from_settings(services.settings)
    _write(services, 3)
    seal_all(services.sessions, key)
    with transaction(services.sessions) as session:
        session.add(
            AccessRecord(
                at=utcnow(),
                username="intruder",
                role="admin",
                action="retrieve",
                outcome="success",
                detail={},
                chain_seq=4,
                digest="f" * 64,
            )
        )
    forged = _id_at(services, 4)
    assert _verify(services) == [f"chain place 4 (record {forged}): altered: its content no longer matches its seal"]

    other = AuditKey(b"another key entirely, 32 bytes long!")
    problems = _verify(services, other)
    assert problems[0].startswith(f"chain: checkpoints were sealed with key(s) {key.key_id}, not this one")
    assert len(problems) == 1 + 4  # every record fails under the other key


@on_both
def test_retention_prunes_the_oldest_and_the_rest_still_verifies(
    make_services: Callable[..., Services], backend: str
) -> None:
    services = make_services(backend)
    key = AuditKey.from_settings(services.settings)
    _write(services, 6)
    seal_all(services.sessions, key)
    now = utcnow()
    with transaction(services.sessions) as session:
        # The first four are three years old, the fifth too — but the sixth is young.
        for place in (1, 2, 3, 4, 5):
            session.execute(
                update(AccessRecord).where(AccessRecord.chain_seq == place).values(at=now - timedelta(days=1100))
            )
    # Backdating changed their content, so re-seal from scratch as if they had been written then.
    with transaction(services.sessions) as session:
        session.execute(update(AccessRecord).values(chain_seq=None, digest=None))
        session.execute(delete(AuditSeal))
    seal_all(services.sessions, key)
    assert _verify(services) == []
    with transaction(services.sessions) as session:
        assert prune(session, key, older_than=now - timedelta(days=1000)) == 5
    with transaction(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(AccessRecord)) == 1
        verdict = verify(session, key)
    assert verdict.intact and (verdict.first, verdict.last) == (6, 6)
    _write(services, 2)  # the chain goes on from the pruned point
    seal_all(services.sessions, key)
    with transaction(services.sessions) as session:
        verdict = verify(session, key)
        assert prune(session, key, older_than=now - timedelta(days=1000)) == 0
    assert verdict.intact and (verdict.first, verdict.last, verdict.checked) == (6, 8, 3)


@on_both
def test_two_sealers_at_once_chain_every_record_exactly_once(
    make_services: Callable[..., Services], backend: str
) -> None:
    services = make_services(backend)
    key = AuditKey.from_settings(services.settings)
    _write(services, 40)
    errors: list[Exception] = []

    def sealer() -> None:
        for _ in range(20):
            try:
                with transaction(services.sessions) as session:
                    seal(session, key, batch=3)
            except Exception as exc:  # SQLite: the loser of a race may fail on the unique place
                errors.append(exc)

    threads = [threading.Thread(target=sealer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seal_all(services.sessions, key)
    with transaction(services.sessions) as session:
        places = session.scalars(select(AccessRecord.chain_seq).order_by(AccessRecord.chain_seq)).all()
    assert places == list(range(1, 41))
    assert _verify(services) == []
    assert all("UNIQUE" in str(e).upper() or "locked" in str(e) for e in errors), errors


@on_both
def test_administrative_changes_are_audit_records_in_their_own_transaction(
    make_services: Callable[..., Services], backend: str
) -> None:
    services = make_services(backend)
    with transaction(services.sessions) as session:
        site = add_site(session, consortium="Dongtai", name="Fudong", tier="township")  # as the CLI does
        site_id = site.id
    with transaction(services.sessions) as session:
        record = session.scalars(select(AccessRecord).where(AccessRecord.action == "site.created")).one()
        assert (record.username, record.role, record.source, record.site_id) == (
            f"cli:{login()}",
            "operator",
            "local",
            site_id,
        )
        assert record.detail == {"name": "Fudong", "tier": "township"}
    # A change that rolls back leaves no audit record either.
    with pytest.raises(RuntimeError), transaction(services.sessions) as session:
        add_site(session, consortium="Dongtai", name="Touzao", tier="township")
        raise RuntimeError("abandoned")
    with transaction(services.sessions) as session:
        assert session.scalar(select(func.count()).where(AccessRecord.action == "site.created")) == 1


@on_both
def test_search_and_export_find_who_opened_a_patient(make_services: Callable[..., Services], backend: str) -> None:
    services = make_services(backend)
    _write(services, 3, patient="P0001")
    _write(services, 2, patient="P0002")
    seal_all(services.sessions, AuditKey.from_settings(services.settings))
    with transaction(services.sessions) as session:
        found = search(session, Search(patient_id="P0002"))
        assert [r.study_uid for r in found] == ["1.2.3.1", "1.2.3.0"]  # newest first
        page = search(session, Search(patient_id="P0001"), limit=2)
        rest = search(session, Search(patient_id="P0001"), limit=2, before_id=page[-1].id)
        assert len(page) == 2 and len(rest) == 1
        assert search(session, Search(patient_id="P0001", site_ids=frozenset({99}))) == []
        lines = list(export_lines(session, Search(username="li"), chunk=2))
    assert len(lines) == 5 and '"patient_id": "P0001"' in lines[0] and '"chain_seq": 1' in lines[0]
    assert "王^小明" in lines[0]


def test_sqlite_keeps_microseconds_so_a_record_reads_back_as_sealed(make_services: Callable[..., Services]) -> None:
    services = make_services()
    _write(services, 1)
    with transaction(services.sessions) as session:
        raw = session.execute(text("SELECT at FROM access_record")).scalar_one()
    assert "." in str(raw)  # "2026-12-03 07:12:31.123456": the sealed text is the stored one
    seal_all(services.sessions, AuditKey.from_settings(services.settings))
    assert _verify(services) == []
