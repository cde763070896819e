"""The edge's disk stays bounded: acknowledged studies are deleted after the retention period,
and a study the centre has not acknowledged is never deleted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import storescu, wait_for
from tests.pacs.edge.conftest import EDGE_AE, MODALITY_AE, Centre, EdgeProcess
from tests.pacs.edge.test_forward import stable, study_of
from tests.pacs.helpers import write_ct


def objects(edge: EdgeProcess) -> list[Path]:
    return list((edge.home / "objects" / "instances").rglob("*.dcm"))


def test_an_acknowledged_study_is_pruned_after_the_retention_period(
    centre: Centre, make_edge: Callable[..., EdgeProcess], data_cache: Path
) -> None:
    edge = make_edge(centre, retention_days=0, prune_interval_s=1)
    files = write_ct(data_cache / "edge-forward-5", slices=5, seed=31, size=64)
    study_uid = study_of(files)
    assert storescu(edge.port, files, calling=MODALITY_AE, called=EDGE_AE)[0] == 5
    wait_for(lambda: stable(centre, study_uid), timeout=30, interval=0.2)
    wait_for(lambda: edge.status() == [] and not objects(edge), timeout=30, interval=0.5)
    assert len(centre.instances(study_uid)) == 5  # only the clinic's copy went


def test_a_study_the_centre_has_not_acknowledged_is_never_pruned(
    centre: Centre, make_edge: Callable[..., EdgeProcess], data_cache: Path
) -> None:
    edge = make_edge(centre, calling_ae_title="STRANGER", retention_days=0)
    files = write_ct(data_cache / "edge-forward-5", slices=5, seed=31, size=64)
    study_uid = study_of(files)
    assert storescu(edge.port, files, calling=MODALITY_AE, called=EDGE_AE)[0] == 5
    wait_for(lambda: (s := edge.study(study_uid)) and s["state"] == "failed", timeout=30)
    pruned = edge.cli("prune", "--days", "0")
    assert pruned.returncode == 0 and "0 acknowledged" in pruned.stdout, pruned.stdout + pruned.stderr
    assert len(objects(edge)) == 5 and edge.study(study_uid) is not None
