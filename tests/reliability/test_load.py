"""Load through the production topology (issue G): 8 senders push a CT each through HAProxy to
two receivers while 4 clients run QIDO/WADO over HTTPS through a second HAProxy to two
`yunying web` — every instance present once with the sha256 sent, no failure status, no web
error, the receivers' memory bounded. This is bench/reliability.py's driver at a size that
keeps the suite short (8 × 300 slices of 128²); the full 512² run and its figures are in docs/performance.md."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.reliability.conftest import bench_driver

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_eight_senders_through_haproxy_while_readers_search_and_retrieve(tmp_path: Path, data_cache: Path) -> None:
    if shutil.which("haproxy") is None:
        pytest.fail("haproxy is needed: apt-get install haproxy")
    figures = bench_driver().run_load(tmp_path, senders=8, slices=300, size=128, web_clients=4, cache=data_cache)
    assert figures["failures"] == 0, figures["failure_statuses"]
    assert (figures["missing"], figures["wrong_sha256"], figures["duplicated"]) == (0, 0, 0)
    assert figures["web_errors"] == [] and all(figures["web"][k]["n"] > 0 for k in ("qido", "metadata", "frame"))
    assert all(mb < 300 for mb in figures["receiver_peak_rss_mb"]), figures["receiver_peak_rss_mb"]
