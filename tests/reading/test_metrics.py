"""Prometheus metrics (issue G): C-STOREs by storescu move the process counters (instances by
outcome, bytes, associations accepted and refused, the ingest histogram); the index figures
show the queued job, the open reading task and its tier; /metrics is loopback-only unless a
token is set; a stand-alone receiver serves its counters on YUNYING_METRICS_PORT."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reading.settings import ReadingSettings
from tests.conftest import BACKENDS, free_port, receiver_env, require, spawn_receiver, storescu, wait_for
from tests.dicomweb.conftest import served
from tests.pacs.helpers import write_ct
from tests.reading.world import World
from viewer.app import create_app

on_both = pytest.mark.parametrize("backend", BACKENDS)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by name and sorted labels (the parser checks the format too)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


@on_both
def test_metrics_follow_the_stores_and_the_index(
    make_world: Callable[..., World], backend: str, tmp_path: Path
) -> None:
    world = make_world(backend)
    with served(create_app(world.services, ReadingSettings())) as url:
        before = samples(httpx.get(f"{url}/metrics", timeout=10).text)
        uid = world.ready_study(slices=3)  # three instances through the ingest path, routed to the county
        after = samples(httpx.get(f"{url}/metrics", timeout=10).text)
    assert uid
    assert (
        value(after, "yunying_instances_received_total", outcome="stored")
        - value(before, "yunying_instances_received_total", outcome="stored")
        == 3
    )
    assert value(after, "yunying_ingest_seconds_count") - value(before, "yunying_ingest_seconds_count") == 3
    assert value(after, "yunying_received_bytes_total") > value(before, "yunying_received_bytes_total")
    assert value(after, "yunying_index_up") == 1


@on_both
def test_index_figures_show_the_open_task_and_the_queued_job(make_world: Callable[..., World], backend: str) -> None:
    world = make_world(backend)
    world.ready_study()
    with served(create_app(world.services, ReadingSettings())) as url:
        scrape = samples(httpx.get(f"{url}/metrics", timeout=10).text)
    assert value(scrape, "yunying_tasks_open", tier="county", priority="routine", state="queued") == 1
    assert value(scrape, "yunying_tasks_past_deadline", tier="county", priority="routine") == 0
    assert value(scrape, "yunying_jobs_queued", kind="ai.prescreen") == 1  # stable, no AI worker here
    assert value(scrape, "yunying_jobs_oldest_age_seconds", kind="ai.prescreen") >= 0
    assert value(scrape, "yunying_sla_breaches_total") == 0
    assert value(scrape, "yunying_index_up") == 1


def test_metrics_need_the_token_once_one_is_set(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.services.settings = world.services.settings.model_copy(update={"metrics_token": "m" * 32})
    with served(create_app(world.services, ReadingSettings())) as url:
        refused = httpx.get(f"{url}/metrics", timeout=10)
        wrong = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10)
        allowed = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {'m' * 32}"}, timeout=10)
    assert refused.status_code == 401 and "YUNYING_METRICS_TOKEN" in refused.text
    assert wrong.status_code == 401
    assert allowed.status_code == 200 and "yunying_index_up 1.0" in allowed.text


def test_a_stand_alone_receiver_serves_its_counters(tmp_path: Path) -> None:
    require("storescu")
    from tests.conftest import yunying

    metrics_port = free_port()
    env = receiver_env(tmp_path / "var", metrics_port=metrics_port, http_host="127.0.0.1")
    yunying("db", "upgrade", env=env)
    yunying("site", "add", "Fudong", "--tier", "township", "--consortium", "Dongtai", env=env)
    yunying("ae", "add", "FUDONG_CT", "--site", "Fudong", "--address", "127.0.0.1", env=env)
    receiver = spawn_receiver(env, tmp_path / "receiver.log")
    try:
        files = write_ct(tmp_path / "ct", slices=2, seed=9, size=32, kind="head")
        ok, failed, output = storescu(receiver.port, files)
        assert (ok, failed) == (2, 0), output
        storescu(receiver.port, files, calling="STRANGER")  # refused: no such site AE

        def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            scrape = samples(httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text)
            return scrape if value(scrape, "yunying_associations_total", result="rejected") >= 1 else None

        scrape = wait_for(scraped, timeout=10)
        assert value(scrape, "yunying_instances_received_total", outcome="stored") == 2
        assert value(scrape, "yunying_associations_total", result="accepted") == 1
        assert value(scrape, "yunying_associations_open") == 0
        assert re.search(
            r"^process_resident_memory_bytes ",
            httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text,
            re.M,
        )
    finally:
        receiver.stop()
