"""The edge forwards what a clinic's modality sends it, and says so: real storescu → real
``yunying edge serve`` → (test-owned proxy) → the centre's real receiver and web app."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pydicom

from pacs.index.db import transaction
from pacs.index.models import Study, StudyState
from tests.conftest import storescu, wait_for
from tests.pacs.edge.conftest import EDGE_AE, MODALITY_AE, Centre, EdgeProcess
from tests.pacs.helpers import file_dataset_sha256, write_ct


def study_of(files: list[Path]) -> str:
    return str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


def stable(centre: Centre, study_uid: str) -> bool:
    with transaction(centre.services.sessions, read_only=True) as session:
        return session.query(Study).filter_by(study_uid=study_uid, state=StudyState.STABLE).count() == 1


def test_a_study_reaches_the_centre_byte_identical_and_turns_stable_after_its_manifest(
    centre: Centre, make_edge: Callable[..., EdgeProcess], data_cache: Path
) -> None:
    edge = make_edge(centre)
    files = write_ct(data_cache / "edge-forward-5", slices=5, seed=31, size=64)
    ok, failed, output = storescu(edge.port, files, calling=MODALITY_AE, called=EDGE_AE)
    assert (ok, failed) == (5, 0), output
    study_uid = study_of(files)

    wait_for(lambda: stable(centre, study_uid), timeout=30, interval=0.2)
    held = centre.instances(study_uid)
    assert sorted(i.sha256 for i in held) == sorted(file_dataset_sha256(f) for f in files)
    assert all(i.version == 1 and i.calling_ae == EDGE_AE for i in held)
    kinds = [c.kind for c in centre.changes(study_uid)]
    assert kinds.index("study.manifest_satisfied") < kinds.index("study.stable")
    assert kinds.count("instance.stored") == 5

    status = wait_for(lambda: (s := edge.study(study_uid)) and s["state"] == "acknowledged" and s, timeout=20)
    assert (status["acknowledged"], status["total"], status["manifest"]) == (5, 5, "confirmed")
    table = edge.cli("status")
    assert "acknowledged" in table.stdout, table.stdout


def test_a_modality_not_on_the_edge_allow_list_is_rejected_and_nothing_is_kept(
    centre: Centre, make_edge: Callable[..., EdgeProcess], data_cache: Path
) -> None:
    edge = make_edge(centre)
    files = write_ct(data_cache / "edge-forward-5", slices=5, seed=31, size=64)
    ok, _, output = storescu(edge.port, files[:1], calling="INTRUDER", called=EDGE_AE)
    assert ok == 0 and "Association Rejected" in output, output
    assert edge.status() == []
    assert centre.instances(study_of(files)) == []


def test_with_the_centre_down_the_edge_still_answers_success_and_forwards_once_it_is_back(
    centre: Centre, make_edge: Callable[..., EdgeProcess], data_cache: Path
) -> None:
    edge = make_edge(centre)
    for proxy in edge.proxies:
        proxy.cut()  # the line is down before the modality sends
    files = write_ct(data_cache / "edge-forward-5", slices=5, seed=31, size=64)
    ok, failed, output = storescu(edge.port, files, calling=MODALITY_AE, called=EDGE_AE)
    assert (ok, failed) == (5, 0), output
    study_uid = study_of(files)
    waiting = wait_for(lambda: (s := edge.study(study_uid)) and s["errors"] and s, timeout=20)
    # The dead line resets each connection: refused over HTTP, an aborted association over DICOM.
    reason = waiting["errors"][0]
    assert waiting["state"] in ("queued", "sending") and ("unreachable" in reason or "no association" in reason), (
        waiting
    )
    assert centre.instances(study_uid) == []
    for proxy in edge.proxies:
        proxy.restore()
    wait_for(lambda: stable(centre, study_uid), timeout=30, interval=0.2)
    assert len(centre.instances(study_uid)) == 5


def test_a_centre_that_does_not_know_the_edge_shows_as_failed_with_its_reason_and_the_data_stays(
    centre: Centre, make_edge: Callable[..., EdgeProcess], data_cache: Path
) -> None:
    # The edge calls the centre as an AE the centre was never told about.
    edge = make_edge(centre, calling_ae_title="STRANGER")
    files = write_ct(data_cache / "edge-forward-5", slices=5, seed=31, size=64)
    ok, _, output = storescu(edge.port, files, calling=MODALITY_AE, called=EDGE_AE)
    assert ok == 5, output
    study_uid = study_of(files)
    failed = wait_for(lambda: (s := edge.study(study_uid)) and s["state"] == "failed" and s, timeout=30)
    assert "rejected STRANGER" in failed["errors"][0] and "yunying ae add" in failed["errors"][0], failed
    assert centre.instances(study_uid) == []
    assert len(list((edge.home / "objects" / "instances").rglob("*.dcm"))) == 5  # kept at the clinic

    # Fixed at the centre, `yunying edge retry` sends it all.
    from pacs.identity.sites import add_site_ae
    from pacs.index.models import Site

    with transaction(centre.services.sessions) as session:
        add_site_ae(
            session, site=session.get_one(Site, centre.site_id), ae_title="STRANGER", allowed_address="127.0.0.1"
        )
    assert edge.cli("retry").returncode == 0
    wait_for(lambda: stable(centre, study_uid), timeout=30, interval=0.2)
    assert len(centre.instances(study_uid)) == 5


def test_a_wrong_site_token_fails_the_manifest_with_the_reason(
    centre: Centre, make_edge: Callable[..., EdgeProcess], data_cache: Path
) -> None:
    edge = make_edge(centre, site_token="not-a-token")
    files = write_ct(data_cache / "edge-forward-5", slices=5, seed=31, size=64)
    assert storescu(edge.port, files, calling=MODALITY_AE, called=EDGE_AE)[0] == 5
    study_uid = study_of(files)
    failed = wait_for(lambda: (s := edge.study(study_uid)) and s["state"] == "failed" and s, timeout=30)
    assert "site token" in failed["errors"][0] and "YUNYING_EDGE_SITE_TOKEN" in failed["errors"][0], failed
    # The instances went (DICOM needs no token); the centre holds the study back all the same.
    assert len(centre.instances(study_uid)) == 5
    assert not stable(centre, study_uid)


def test_a_study_sent_twice_reaches_the_centre_once(
    centre: Centre, make_edge: Callable[..., EdgeProcess], data_cache: Path
) -> None:
    edge = make_edge(centre)
    files = write_ct(data_cache / "edge-forward-5", slices=5, seed=31, size=64)
    study_uid = study_of(files)
    assert storescu(edge.port, files, calling=MODALITY_AE, called=EDGE_AE)[0] == 5
    wait_for(lambda: (s := edge.study(study_uid)) and s["state"] == "acknowledged", timeout=30)
    assert storescu(edge.port, files, calling=MODALITY_AE, called=EDGE_AE)[0] == 5  # the technologist re-sends
    status = edge.study(study_uid)
    assert status is not None and (status["acknowledged"], status["total"]) == (5, 5), status
    assert len(centre.instances(study_uid)) == 5
    assert [c.kind for c in centre.changes(study_uid)].count("instance.duplicate") == 0


def test_an_instance_the_centre_refuses_is_failed_with_the_centres_status_and_kept(
    centre: Centre, make_edge: Callable[..., EdgeProcess], data_cache: Path
) -> None:
    from pacs.identity.sites import add_site, add_site_ae

    # The study already reached the centre from another site: the centre refuses to merge
    # (0xC005, pacs/ingest.py) what the edge forwards of it.
    with transaction(centre.services.sessions) as session:
        other = add_site(session, consortium="Dongtai", name="Other", tier="village")
        add_site_ae(session, site=other, ae_title="OTHER_CT", allowed_address="127.0.0.1")
    files = write_ct(data_cache / "edge-forward-5", slices=5, seed=31, size=64)
    study_uid = study_of(files)
    assert storescu(centre.dicom_port, files[:1], calling="OTHER_CT", called="YUNYING")[0] == 1

    edge = make_edge(centre)
    assert storescu(edge.port, files, calling=MODALITY_AE, called=EDGE_AE)[0] == 5
    failed = wait_for(lambda: (s := edge.study(study_uid)) and s["failed"] == 5 and s, timeout=30)
    assert failed["state"] == "failed" and "0xC005" in failed["errors"][0], failed
    assert len(list((edge.home / "objects" / "instances").rglob("*.dcm"))) == 5
    assert len(centre.instances(study_uid)) == 1  # only the other site's
