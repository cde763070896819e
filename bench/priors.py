#!/usr/bin/env python
"""How long finding a study's priors across a consortium takes (``pacs.patients.prior_studies``,
what ``GET /api/tasks/{id}/priors`` runs): a fresh migrated SQLite index (or the empty PostgreSQL
database named in ``--database-url``) with ``--patients`` patient rows, one study each, on 30 sites
of one consortium and 10 of another; people drawn so that each has about three patient rows, half
of them with an ID card number; readers' decisions (``patient_link``, confirmed or rejected) on
``--linked`` of the pairs of one person's rows in one consortium; then p50/p95/max of
``--repeats`` calls for random studies.

    .venv/bin/python bench/priors.py --patients 50000
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from typing import Any

from sqlalchemy import insert

from pacs.index.db import make_engine, make_sessionmaker, transaction
from pacs.index.migrate import upgrade
from pacs.index.models import Consortium, Patient, PatientLink, Site, Study
from pacs.patients import demographics_key, prior_studies


def _links(patients: list[dict[str, Any]], share: float, rng: random.Random) -> list[dict[str, Any]]:
    """Decisions on ``share`` of the pairs of rows of one person within one consortium."""
    rows: dict[tuple[str | None, bool], list[int]] = {}
    for p in patients:
        rows.setdefault((p["demographics_key"], p["site_id"] <= 30), []).append(p["id"])
    links = []
    for ids in rows.values():
        for i, low in enumerate(ids):
            for high in ids[i + 1 :]:
                if rng.random() < share:
                    links.append(
                        {
                            "consortium_id": 1 if patients[low - 1]["site_id"] <= 30 else 2,
                            "patient_low": low,
                            "patient_high": high,
                            "decision": rng.choice(["confirmed", "rejected"]),
                            "decided_by": "bench",
                        }
                    )
    return links


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--linked", type=float, default=0.5, help="share of same-person pairs with a decision")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/priors.db"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    rng = random.Random(1)
    n = args.patients
    with transaction(sessions) as session:
        session.add_all([Consortium(id=1, name="A"), Consortium(id=2, name="B")])
        session.flush()
        session.add_all(
            [Site(id=i, consortium_id=1 if i <= 30 else 2, name=f"site {i}", tier="township") for i in range(1, 41)]
        )
        session.flush()
        patients = []
        for i in range(1, n + 1):
            person = rng.randrange(n // 3)
            patients.append(
                {
                    "id": i,
                    "site_id": rng.randrange(1, 41),
                    "patient_id": f"P{i}",
                    "national_id": f"{person:018d}" if rng.random() < 0.5 else None,
                    "demographics_key": demographics_key(f"name{person}", "19550304", "F"),
                }
            )
        session.execute(insert(Patient), patients)
        decided = _links(patients, args.linked, rng)
        links = len(decided)
        if decided:
            session.execute(insert(PatientLink), decided)
        session.execute(
            insert(Study),
            [
                {
                    "study_uid": f"1.2.{p['id']}",
                    "site_id": p["site_id"],
                    "patient_pk": p["id"],
                    "patient_id": p["patient_id"],
                    "study_date": "20250101",
                    "modalities": "CT",
                    "state": "stable",
                }
                for p in patients
            ],
        )
    times = []
    found = 0
    with transaction(sessions, read_only=True) as session:
        for _ in range(args.repeats):
            began = time.perf_counter()
            found += len(prior_studies(session, f"1.2.{rng.randrange(1, n + 1)}"))
            times.append(time.perf_counter() - began)
    engine.dispose()
    times.sort()
    p50, p95 = times[len(times) // 2], times[int(len(times) * 0.95)]
    print(
        f"{n} patients and studies on 40 sites ({url.split(':')[0]}): prior_studies p50 {p50 * 1000:.1f} ms, "
        f"p95 {p95 * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms; {found / len(times):.1f} priors a study; "
        f"{links} decisions"
    )


if __name__ == "__main__":
    main()
