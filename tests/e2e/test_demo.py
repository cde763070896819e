"""``yunying demo`` from an empty home: the demo consortium, studies pushed by real C-STORE,
all of them stable, with names decoded (including a GBK name sent without a character set)."""

from __future__ import annotations

import json
import stat
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from pacs.identity.users import authenticate
from pacs.index.db import make_engine, make_sessionmaker, transaction
from pacs.index.models import Patient
from tests.conftest import free_port, receiver_env, yunying
from viewer.demo import DEMO_RESIDENT_ID


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_demo_pushes_studies_that_become_stable(tmp_path: Path) -> None:
    env = receiver_env(tmp_path / "var", dicom_port=free_port(), http_port=free_port(), stability_seconds=1)
    done = yunying("demo", "--exit-after-push", "--ct-slices", "6", env=env, timeout=280)
    assert "(0 failed)" in done.stdout, done.stdout + done.stderr
    studies = [json.loads(line) for line in yunying("study", "list", "--json", env=env).stdout.splitlines()]
    assert len(studies) == 6
    assert {s["state"] for s in studies} == {"stable"}
    by_site = {s["site"]: s for s in studies}
    # The AI pre-screen adds its SR to a study as a derived series once it has run (the demo may
    # exit before it has): 6 CT slices, plus that SR when it is there.
    fudong_ct = next(s for s in studies if s["site"] == "Fudong Health Centre" and "CT" in s["modalities"].split("\\"))
    ai_objects = 1 if "SR" in fudong_ct["modalities"].split("\\") else 0
    assert fudong_ct["patient_name"] == "王^桂英" and fudong_ct["num_instances"] == 6 + ai_objects
    renji = by_site["Dongtai Renji Hospital (private)"]
    # Sent as GBK bytes with no (0008,0005); RENJI_CT's site AE assumes GB18030.
    assert all("\u4e00" <= ch <= "\u9fff" or ch == "^" for ch in renji["patient_name"]), renji["patient_name"]
    stable = [json.loads(line) for line in yunying("changes", "--kind", "study.stable", env=env).stdout.splitlines()]
    assert len(stable) == 6

    # Tokens to try the API at once: files readable by the owner only, a consortium admin's
    # scope (every demo site) and the Fudong site's (one site).
    home = tmp_path / "var"
    tokens = {name: home / name for name in ("demo-admin-token", "demo-site-token")}
    for path in tokens.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    engine = make_engine(f"sqlite:///{home / 'yunying.db'}")
    try:
        with transaction(make_sessionmaker(engine)) as session:
            admin = authenticate(session, tokens["demo-admin-token"].read_text().strip())
            site = authenticate(session, tokens["demo-site-token"].read_text().strip())
            # 王桂英 at Fudong and at the county hospital: two patient IDs, one ID card (issue F's priors).
            same_card = session.scalars(select(Patient).where(Patient.national_id == DEMO_RESIDENT_ID)).all()
            assert sorted(p.patient_id for p in same_card) == ["DT0309112", "FD0071"]
            assert len({p.site_id for p in same_card}) == 2
    finally:
        engine.dispose()
    assert admin is not None and site is not None
    assert admin.scope.site_ids is not None and len(admin.scope.site_ids) == 6
    assert site.scope.site_ids is not None and len(site.scope.site_ids) == 1
    assert "dicomweb/studies" in done.stdout
    # Browser logins, one per role, printed with their public demo passwords.
    from viewer.demo import DEMO_LOGINS

    for demo in DEMO_LOGINS:
        assert f"{demo.login} " in done.stdout and demo.password in done.stdout


def test_readyz_reports_dependencies(tmp_path: Path) -> None:
    from pacs.index.migrate import upgrade
    from pacs.service import build_services
    from pacs.settings import Settings
    from viewer.serve import EmbeddedService

    settings = Settings(home=tmp_path / "var", dicom_host="127.0.0.1", dicom_port=0, http_port=free_port())
    upgrade(settings.resolved_database_url)
    services = build_services(settings)
    service = EmbeddedService(services)
    service.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.http_port}/readyz", timeout=5) as response:
            assert json.loads(response.read()) == {"status": "ok", "index": "ok", "store": "ok"}
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.http_port}/healthz", timeout=5) as response:
            assert response.status == 200
    finally:
        service.stop()
        services.close()
