"""The other transport (STOW-RS with the site token) and the bandwidth cap."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import storescu, wait_for
from tests.pacs.edge.conftest import EDGE_AE, MODALITY_AE, Centre, EdgeProcess
from tests.pacs.edge.test_forward import stable, study_of
from tests.pacs.helpers import file_dataset_sha256, write_ct


def test_over_stow_rs_with_the_site_token_the_study_arrives_byte_identical(
    centre: Centre, make_edge: Callable[..., EdgeProcess], data_cache: Path
) -> None:
    edge = make_edge(centre, transport="stow")
    files = write_ct(data_cache / "edge-forward-5", slices=5, seed=31, size=64)
    study_uid = study_of(files)
    assert storescu(edge.port, files, calling=MODALITY_AE, called=EDGE_AE)[0] == 5
    wait_for(lambda: stable(centre, study_uid), timeout=30, interval=0.2)
    held = centre.instances(study_uid)
    assert sorted(i.sha256 for i in held) == sorted(file_dataset_sha256(f) for f in files)
    assert edge.proxies[0].connections_made == 0  # no DICOM association: all of it went by HTTP
    wait_for(lambda: (s := edge.study(study_uid)) and s["state"] == "acknowledged", timeout=20)


def test_a_stow_edge_with_a_wrong_token_shows_each_instance_failed_with_the_reason(
    centre: Centre, make_edge: Callable[..., EdgeProcess], data_cache: Path
) -> None:
    edge = make_edge(centre, transport="stow", site_token="revoked-or-mistyped")
    files = write_ct(data_cache / "edge-forward-5", slices=5, seed=31, size=64)
    study_uid = study_of(files)
    assert storescu(edge.port, files, calling=MODALITY_AE, called=EDGE_AE)[0] == 5
    failed = wait_for(lambda: (s := edge.study(study_uid)) and s["failed"] == 5 and s, timeout=30)
    assert failed["state"] == "failed" and "refused the site token (401" in failed["errors"][0], failed
    assert centre.instances(study_uid) == []


def test_the_bandwidth_cap_holds_what_the_edge_sends_to_the_set_rate(
    centre: Centre, make_edge: Callable[..., EdgeProcess], data_cache: Path
) -> None:
    cap_kbps = 2000
    edge = make_edge(centre, bandwidth_kbps=cap_kbps)
    files = write_ct(data_cache / "edge-cap-8", slices=8, seed=45, size=256)
    study_uid = study_of(files)
    started = time.monotonic()
    assert storescu(edge.port, files, calling=MODALITY_AE, called=EDGE_AE)[0] == 8
    wait_for(lambda: len(centre.instances(study_uid)) == 8, timeout=60, interval=0.1)
    took = time.monotonic() - started
    sent = edge.proxies[0].bytes_up
    assert sent > 0.9 * sum(f.stat().st_size for f in files)  # the data sets, without their file meta
    floor = sent * 8 / (cap_kbps * 1000)
    # Never faster than the cap; not much slower either (the cap is the only limit here).
    assert floor * 0.95 <= took <= floor * 2 + 5, (took, floor)
