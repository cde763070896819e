"""Issue H's "done when": a township CT over a thin, lossy rural line that goes down in the
middle of the study. The centre runs in this process; the edge is a real ``yunying edge serve``;
between them a test-owned proxy plays the line (tests/tcp_proxy.py says what its "loss" is).

* the modality (dcmtk ``storescu``) gets Success at LAN speed from the edge;
* every instance reaches the centre stored exactly once, byte-identical (data set after 0002);
* the study turns stable at the centre only after the edge's manifest is satisfied, although
  the outage (10 s) outlasted the centre's quiet period (1 s) many times over;
* the report signed at the centre comes back to the edge (pulled over the same line).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from tests.conftest import storescu, wait_for
from tests.pacs.edge.conftest import EDGE_AE, MODALITY_AE, Centre, EdgeProcess
from tests.pacs.edge.test_forward import stable, study_of
from tests.pacs.helpers import file_dataset_sha256, write_ct
from tests.tcp_proxy import LinkShape

# 200 ms round trip (100 ms each way), 2 Mbit/s each way, 3 % of 16 KiB chunks held back a
# 300 ms retransmission timeout.
RURAL_LINE = LinkShape(latency_s=0.1, rate_kbps=2000, loss=0.03, rto_s=0.3, seed=7)
OUTAGE_S = 10.0
CT_HEAD = {
    "template_id": "ct_head",
    "fields": {"haemorrhage": False, "ventricles": "normal"},
    "findings": "脑实质内未见异常密度影，脑室系统未见扩大，中线结构居中。",
    "impression": "头颅CT平扫未见明显异常。",
}


def sign_report(centre: Centre, study_uid: str) -> dict[str, Any]:
    def listed() -> dict[str, Any] | None:
        tasks = centre.call("li", "GET", "/api/worklist").json()["tasks"]
        return next((t for t in tasks if t["study_uid"] == study_uid), None)

    task: dict[str, Any] = wait_for(listed, timeout=30, interval=0.3)
    assert centre.call("li", "POST", f"/api/tasks/{task['id']}/claim").status_code == 200
    signed = centre.call("li", "POST", f"/api/tasks/{task['id']}/sign", json={"report": CT_HEAD})
    assert signed.status_code == 200, signed.text
    return task


@pytest.mark.slow
def test_a_ct_crosses_a_thin_lossy_line_with_an_outage_complete_and_the_report_comes_back(
    centre: Centre, make_edge: Callable[..., EdgeProcess], data_cache: Path
) -> None:
    edge = make_edge(centre, shape=RURAL_LINE)
    files = write_ct(data_cache / "edge-degraded-20", slices=20, seed=41, size=256, kind="head")
    study_uid = study_of(files)
    total_bytes = sum(f.stat().st_size for f in files)

    started = time.monotonic()
    ok, failed, output = storescu(edge.port, files, calling=MODALITY_AE, called=EDGE_AE)
    modality_s = time.monotonic() - started
    assert (ok, failed) == (20, 0), output
    line_s = total_bytes * 8 / (RURAL_LINE.rate_kbps * 1000)
    assert modality_s < line_s / 2, f"the modality waited {modality_s:.1f} s: it should not wait for the line"

    # The line goes down once the centre holds a few instances, and stays down 10 s.
    wait_for(lambda: len(centre.instances(study_uid)) >= 5, timeout=60, interval=0.1)
    for proxy in edge.proxies:
        proxy.cut()
    cut_at = time.monotonic()
    held_at_cut = len(centre.instances(study_uid))
    time.sleep(OUTAGE_S)  # the outage itself: nothing to poll for
    assert not stable(centre, study_uid), "the centre must hold a half study back, quiet or not"
    for proxy in edge.proxies:
        proxy.restore()
    restored_at = time.monotonic()

    wait_for(lambda: stable(centre, study_uid), timeout=90, interval=0.2)
    complete_s = time.monotonic() - started
    after_outage_s = time.monotonic() - restored_at
    held = centre.instances(study_uid)
    assert len(held) == 20 and all(i.version == 1 for i in held), [(i.sop_instance_uid, i.version) for i in held]
    assert sorted(i.sha256 for i in held) == sorted(file_dataset_sha256(f) for f in files)
    kinds = [c.kind for c in centre.changes(study_uid)]
    assert kinds.count("instance.stored") == 20
    assert kinds.count("study.stable") == 1
    assert kinds.index("study.manifest_satisfied") < kinds.index("study.stable")
    assert 5 <= held_at_cut < 20

    status = wait_for(lambda: (s := edge.study(study_uid)) and s["state"] == "acknowledged" and s, timeout=30)
    assert (status["acknowledged"], status["total"]) == (20, 20)

    sign_report(centre, study_uid)

    def report_back() -> list[dict[str, Any]]:
        done = edge.cli("reports", "--json")
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    [report] = wait_for(report_back, timeout=60, interval=0.5)
    assert report["study_uid"] == study_uid and report["impression"] == CT_HEAD["impression"]
    assert Path(report["pdf"]).read_bytes().startswith(b"%PDF")
    sr = pydicom.dcmread(report["sr"])
    assert sr.StudyInstanceUID == study_uid and sr.Modality == "SR"
    page = httpx.get(f"http://127.0.0.1:{edge.status_port}/", timeout=10).text
    assert "acknowledged (20 instances" in page and f"/reports/{report['report_id']}.pdf" in page
    assert httpx.get(f"http://127.0.0.1:{edge.status_port}/reports/{report['report_id']}.pdf").content.startswith(
        b"%PDF"
    )
    delivered = centre.call("fudong-edge", "GET", "/api/site/deliveries").json()
    assert [d["state"] for d in delivered] == ["delivered"]

    print(
        f"\nedge figures: {total_bytes / 1e6:.2f} MB in 20 instances; modality → edge {modality_s:.2f} s; "
        f"line alone would take {line_s:.1f} s; complete at the centre after {complete_s:.1f} s "
        f"(outage {OUTAGE_S:.0f} s from {cut_at - started:.1f} s, {held_at_cut} held at the cut, "
        f"stable {after_outage_s:.1f} s after the line came back); "
        f"{edge.proxies[0].connections_made} DICOM connections, {kinds.count('instance.duplicate')} instance(s) re-sent"
    )
