"""The edge killed with SIGKILL in the middle of forwarding, then restarted: forwarding resumes
from its durable queue; nothing the centre acknowledged is sent again, nothing is lost, and the
centre stores each instance once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import storescu, wait_for
from tests.pacs.edge.conftest import EDGE_AE, MODALITY_AE, Centre, EdgeProcess
from tests.pacs.edge.test_forward import stable, study_of
from tests.pacs.helpers import file_dataset_sha256, write_ct
from tests.tcp_proxy import LinkShape


def test_an_edge_killed_mid_forward_resumes_after_restart_without_loss_or_duplicates(
    centre: Centre, make_edge: Callable[..., EdgeProcess], data_cache: Path
) -> None:
    # A slow line (4 Mbit/s) so that the kill lands while instances are on their way.
    edge = make_edge(centre, shape=LinkShape(latency_s=0.02, rate_kbps=4000))
    files = write_ct(data_cache / "edge-crash-12", slices=12, seed=43, size=256)
    study_uid = study_of(files)
    assert storescu(edge.port, files, calling=MODALITY_AE, called=EDGE_AE)[0] == 12

    wait_for(lambda: len(centre.instances(study_uid)) >= 3, timeout=60, interval=0.05)
    edge.kill()
    at_kill = len(centre.instances(study_uid))
    assert at_kill < 12, "the kill came too late to test anything"

    edge.start()  # same home, same queue
    wait_for(lambda: stable(centre, study_uid), timeout=90, interval=0.2)
    held = centre.instances(study_uid)
    assert len(held) == 12 and all(i.version == 1 for i in held)
    assert sorted(i.sha256 for i in held) == sorted(file_dataset_sha256(f) for f in files)
    kinds = [c.kind for c in centre.changes(study_uid)]
    assert kinds.count("instance.stored") == 12
    # At most the instances in flight at the kill are sent again (their Success never reached
    # the edge's queue); the centre answers them as duplicates and stores nothing.
    assert kinds.count("instance.duplicate") <= 2, kinds  # one in flight per association (YUNYING_EDGE_ASSOCIATIONS=2)
    status = wait_for(lambda: (s := edge.study(study_uid)) and s["state"] == "acknowledged" and s, timeout=30)
    assert (status["acknowledged"], status["total"]) == (12, 12)
