"""The centre's side of completeness: the manifest API's answers to bad input, and a study held
for a manifest that never comes turning stable after ``manifest_wait_s``, flagged."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from pacs.identity.sites import add_site
from pacs.identity.users import add_user, create_token, find_user
from pacs.index.db import transaction
from pacs.index.models import Alert
from tests.conftest import storescu, wait_for
from tests.pacs.edge.conftest import EDGE_AE, Centre
from tests.pacs.edge.test_forward import stable, study_of
from tests.pacs.helpers import write_ct

DIGEST = hashlib.sha256(b"x").hexdigest()


def put(centre: Centre, who: str, study_uid: str, instances: dict[str, str]) -> tuple[int, dict[str, object]]:
    answer = centre.call(who, "PUT", f"/api/edge/manifests/{study_uid}", json={"instances": instances})
    return answer.status_code, answer.json()


def test_the_manifest_api_answers_what_is_missing_and_refuses_what_it_must(centre: Centre, data_cache: Path) -> None:
    files = write_ct(data_cache / "edge-forward-5", slices=5, seed=31, size=64)
    study_uid = study_of(files)
    status, answer = put(centre, "fudong-edge", study_uid, {"1.2.3.4": DIGEST})
    assert status == 200 and answer["satisfied"] is False and answer["missing"] == ["1.2.3.4"]
    assert put(centre, "li", study_uid, {"1.2.3.4": DIGEST})[0] == 403  # a reader sends no manifests
    status, answer = put(centre, "fudong-edge", study_uid, {"1.2.3.4": "not-a-digest"})
    assert status == 422 and "sha256" in str(answer["detail"])
    assert put(centre, "fudong-edge", "../etc", {"1.2.3.4": DIGEST})[0] in (400, 404)
    assert put(centre, "fudong-edge", study_uid, {})[0] == 422

    # Another site's edge cannot touch this site's study, nor learn that it exists.
    with transaction(centre.services.sessions) as session:
        add_site(session, consortium="Dongtai", name="Other", tier="village")
        add_user(session, username="other-edge", role="site", site="Other", is_service=True)
        centre.tokens["other-edge"] = create_token(session, find_user(session, "other-edge"))[1]
    status, answer = put(centre, "other-edge", study_uid, {"1.2.3.4": DIGEST})
    assert status == 422 and "no study" in str(answer["detail"])
    assert centre.call("other-edge", "GET", f"/api/edge/manifests/{study_uid}").status_code == 404


def test_a_held_study_whose_manifest_never_comes_turns_stable_after_the_wait_flagged(
    data_cache: Path, centre: Centre
) -> None:
    # Straight from the edge's AE to the centre, bypassing any edge: no manifest will come.
    watcher = centre.service.receiving.watcher
    assert watcher is not None
    watcher.manifest_wait = timedelta(seconds=3)  # YUNYING_MANIFEST_WAIT_S, shortened for the test
    files = write_ct(data_cache / "edge-forward-5", slices=5, seed=31, size=64)
    study_uid = study_of(files)
    assert storescu(centre.dicom_port, files, calling=EDGE_AE, called="YUNYING")[0] == 5
    wait_for(lambda: stable(centre, study_uid), timeout=20, interval=0.2)
    [change] = centre.changes(study_uid, "study.stable")
    assert change.payload["manifest"] == "missing"
    with transaction(centre.services.sessions, read_only=True) as session:
        alert = session.scalar(select(Alert).where(Alert.study_uid == study_uid))
    assert alert is not None and "without a satisfied manifest" in alert.message
