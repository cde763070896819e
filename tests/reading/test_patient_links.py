"""QA staff (and admins) see the readers' same-person decisions of their consortium and withdraw
a wrong one: a rejected probable prior, hidden from every reader, is listed again as probable.
Another consortium's QA sees none and withdraws none; readers and sites are refused; both
routes leave access records and the withdrawal a change that keeps who had decided what."""

from __future__ import annotations

from sqlalchemy import select

from pacs import events
from pacs.identity.users import add_user, create_token, find_user
from pacs.index.db import transaction
from pacs.index.models import AccessRecord, Change, PatientLink
from pacs.patients import MatchBasis
from tests.reading.test_priors import Consortium, _decide, _listed, consortium  # noqa: F401


def test_qa_lists_the_decisions_and_withdraws_a_rejection(consortium: Consortium) -> None:  # noqa: F811
    c = consortium
    with transaction(c.world.services.sessions) as session:
        add_user(session, username="qa-xinghua", role="qa", consortium="Xinghua")
        c.tokens["qa-xinghua"] = create_token(session, find_user(session, "qa-xinghua"))[1]
    task = c.world.task_of(c.studies["current"]).id
    probable = c.studies["probable"]
    assert _decide(c, "sun", task, "probable", "rejected", "出生地不同").status_code == 200
    assert probable not in _listed(c, "li", task)

    listed = c.call("qa", "GET", "/api/patient-links")
    assert listed.status_code == 200, listed.text
    [row] = listed.json()
    assert (row["decision"], row["decided_by"], row["reason"]) == ("rejected", "sun", "出生地不同")
    assert sorted((p["site"], p["patient_id"], p["birth_date"], p["sex"]) for p in row["patients"]) == [
        ("Anfeng", "AF-1203", "19550304", "F"),
        ("Fudong", "FD0071", "19550304", "F"),
    ]
    assert c.call("qa", "GET", "/api/patient-links", params={"decision": "confirmed"}).json() == []
    assert c.call("qa", "GET", "/api/patient-links", params={"decision": "maybe"}).status_code == 422
    # Not a reader's or a site's business; nothing of Dongtai for Xinghua's QA.
    for who in ("sun", "fudong"):
        assert c.call(who, "GET", "/api/patient-links").status_code == 403
        assert c.call(who, "POST", f"/api/patient-links/{row['id']}/withdraw", json={}).status_code == 403
    assert c.call("qa-xinghua", "GET", "/api/patient-links").json() == []
    assert c.call("qa-xinghua", "POST", f"/api/patient-links/{row['id']}/withdraw", json={}).status_code == 404
    too_long = c.call("qa", "POST", f"/api/patient-links/{row['id']}/withdraw", json={"reason": "x" * 501})
    assert too_long.status_code == 422
    with transaction(c.world.services.sessions) as session:
        assert session.scalars(select(PatientLink)).one().decision == "rejected"  # nothing changed so far

    withdrawn = c.call("qa", "POST", f"/api/patient-links/{row['id']}/withdraw", json={"reason": "同一人，住址变更"})
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json() == {"id": row["id"], "withdrawn": "rejected", "decided_by": "sun"}
    # Probable again for every reader of the task, and nothing left to withdraw.
    assert _listed(c, "li", task)[probable] == (MatchBasis.PROBABLE, None)
    assert c.call("qa", "GET", "/api/patient-links").json() == []
    assert c.call("qa", "POST", f"/api/patient-links/{row['id']}/withdraw", json={}).status_code == 404

    c.world.services.audit.flush()
    with transaction(c.world.services.sessions) as session:
        assert session.scalars(select(PatientLink)).all() == []
        change = session.scalars(select(Change).where(Change.kind == events.PATIENT_LINK_WITHDRAWN)).one()
        assert (change.actor, change.payload["previous"], change.payload["previous_by"], change.payload["reason"]) == (
            "qa",
            "rejected",
            "sun",
            "同一人，住址变更",
        )
        audited = session.scalars(
            select(AccessRecord)
            .where(
                AccessRecord.action.in_(["patient-links", "patient-link.withdraw"]), AccessRecord.outcome == "success"
            )
            .order_by(AccessRecord.id)
        ).all()
        assert [(r.username, r.action) for r in audited] == [
            ("qa", "patient-links"),
            ("qa", "patient-links"),
            ("qa-xinghua", "patient-links"),
            ("qa", "patient-link.withdraw"),
            ("qa", "patient-links"),
        ]
        assert audited[3].patient_id in ("AF-1203", "FD0071")
