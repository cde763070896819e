"""The web tier and the delivery worker of the production topology without containers (issue G):
two ``yunying web`` processes behind HAProxy in HTTP mode terminating TLS, two receivers behind
HAProxy in TCP mode, a reading worker and a delivery worker, each its own process, on PostgreSQL.

While four clients keep searching through the balancer, one web process is SIGKILLed and later
started again; the township's PACS behind a link that keeps failing (down 3 s, up 1 s, cutting
whatever association is on it) is the return destination of three reports signed over that time.
Nothing the clients asked fails, the balancer takes the dead process out and back in by itself,
every report reaches the township with exactly one acknowledged attempt after the failed ones,
and the audit and the failed-token throttle see each client's own address, not the balancer's.
"""

from __future__ import annotations

import os
import signal
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from pacs.index.models import AccessRecord
from reading.models import Delivery, DeliveryAttempt
from tests.conftest import free_port, require, wait_for
from tests.e2e.test_reading import CT_HEAD
from tests.pacs.helpers import write_ct
from tests.reading.test_delivery import PDF_CLASS, SR_CLASS, storescp
from tests.reliability.conftest import bench_driver
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(300)]

READER, GUESSER, SEARCHER = "127.0.0.3", "127.0.0.2", "127.0.0.4"  # loopback, but not the balancer's


class Searcher(threading.Thread):
    """One client searching QIDO-RS through the balancer without pause; each answer's status and
    the web process that served it (HAProxy's X-Served-By), with the time."""

    def __init__(self, url: str, token: str, verify: ssl.SSLContext | bool, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.verify, self.stop_event = url, token, verify, stop
        self.answers: list[tuple[float, int, str]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        transport = httpx.HTTPTransport(local_address=SEARCHER, verify=self.verify)
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, transport=transport, timeout=30) as client:
            while not self.stop_event.is_set():
                try:
                    answer = client.get("/dicomweb/studies", params={"limit": "10"})
                    self.answers.append((time.monotonic(), answer.status_code, answer.headers.get("x-served-by", "")))
                except httpx.HTTPError as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")


def _flap(link: TcpProxy, stop: threading.Event, down_s: float = 3.0, up_s: float = 1.0) -> None:
    while not stop.is_set():
        link.cut()
        if stop.wait(down_s):
            break
        link.restore()
        stop.wait(up_s)
    link.restore()


def _token(world: Any, user: str) -> str:
    output = world.cli("token", "create", "--user", user)
    return str(max(output.split(), key=len))


def test_a_web_process_killed_and_a_flapping_site_link_lose_nothing(tmp_path: Path, data_cache: Path) -> None:
    for tool in ("storescu", "storescp", "haproxy"):
        require(tool)
    driver = bench_driver()
    url, drop = driver.postgres_database()
    township = free_port()
    received = tmp_path / "township-pacs"
    pacs = storescp(township, received)
    link = TcpProxy(("127.0.0.1", township)).start()
    env = {
        "YUNYING_STABILITY_SECONDS": "1",
        "YUNYING_STABILITY_POLL_S": "0.2",
        "YUNYING_READING_AI_TIMEOUT_S": "1",
        "YUNYING_READING_SWEEP_POLL_S": "0.2",
        "YUNYING_DELIVERY_POLL_S": "0.2",
        "YUNYING_DELIVERY_RETRY_S": "0.5",
        "YUNYING_DELIVERY_RETRY_MAX_S": "1.5",
        "YUNYING_DELIVERY_TIMEOUT_S": "2",
        "YUNYING_AUTH_FAILURE_LIMIT": "3",
    }
    on_duty = ["--on-duty", "daily 00:00-12:00", "--on-duty", "daily 12:00-00:00"]
    setup = [["reader", "add", "li", "--consortium", "Dongtai", "--tier", "county", "--modality", "CT", *on_duty]]
    site = ["--return-ae", "FUDONG_PACS", "--return-host", "127.0.0.1", "--return-port", str(link.port)]
    stop_search, stop_flap = threading.Event(), threading.Event()
    try:
        with driver.topology(
            tmp_path / "var",
            url,
            extra_env=env,
            webs=2,
            web_balancer=True,
            reading_worker=True,
            delivery_worker=True,
            site_options=site,
            setup=setup,
        ) as world:
            studies = []
            for seed in (81, 82, 83):
                files = write_ct(data_cache / f"web-tier-{seed}", slices=4, seed=seed, size=64, kind="head")
                assert driver.send_study(world.dicom_port, files)["failures"] == 0
                studies.append(str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID))
            reader_token = _token(world, "li")
            reader = httpx.Client(
                base_url=world.web_url,
                headers={"Authorization": f"Bearer {reader_token}"},
                transport=httpx.HTTPTransport(local_address=READER, verify=world.verify),
                timeout=30,
            )

            def queued() -> dict[str, int] | None:
                tasks = reader.get("/api/worklist").json()["tasks"]
                found = {t["study_uid"]: t["id"] for t in tasks if t["study_uid"] in studies}
                return found if len(found) == len(studies) else None

            task_of: dict[str, int] = wait_for(queued, timeout=60, interval=0.3)
            searchers = [Searcher(world.web_url, world.token, world.verify, stop_search) for _ in range(4)]
            for searcher in searchers:
                searcher.start()
            flapper = threading.Thread(target=_flap, args=(link, stop_flap), daemon=True)
            flapper.start()

            def sign(study_uid: str) -> None:
                task = task_of[study_uid]
                assert reader.post(f"/api/tasks/{task}/claim").status_code == 200
                assert reader.get(f"/api/tasks/{task}").status_code == 200
                signed = reader.post(f"/api/tasks/{task}/sign", json={"report": CT_HEAD})
                assert signed.status_code == 200, signed.text

            sign(studies[0])
            time.sleep(1.5)
            victim, victim_url = world.webs[0], world.web_urls[0]
            os.kill(victim.pid, signal.SIGKILL)  # web-1 (HAProxy's w0) dies mid-load
            killed_at = time.monotonic()
            time.sleep(2.0)
            sign(studies[1])  # through the survivor
            time.sleep(2.0)
            port = victim_url.rsplit(":", 1)[1]
            world.spawn("web-1-again", [str(driver.YUNYING), "web"], {**world.env, "YUNYING_HTTP_PORT": port})
            restarted_at = time.monotonic()

            def back() -> bool:
                return any(at > restarted_at and by == "w0" for s in searchers for at, _, by in s.answers)

            wait_for(back, timeout=60, interval=0.2)
            sign(studies[2])

            # The failed-token throttle counts the guesser's own address, not the balancer's.
            guesser = httpx.Client(
                base_url=world.web_url,
                transport=httpx.HTTPTransport(local_address=GUESSER, verify=world.verify),
                timeout=30,
            )
            guesses = [
                guesser.get("/dicomweb/studies", headers={"Authorization": f"Bearer guess-{n}-xxxxxxxxxxxx"})
                for n in range(4)
            ]
            # Three in a row may land on either web process: each counts in the shared index.
            assert [g.status_code for g in guesses] == [401, 401, 429, 429]
            assert reader.get("/api/worklist").status_code == 200  # the reader is not blocked with him

            time.sleep(20)  # the link keeps failing a while longer, reports or not
            stop_flap.set()
            flapper.join(10)
            engine = create_engine(url)

            def delivered() -> list[Delivery] | None:
                with Session(engine) as session:
                    rows = list(session.scalars(select(Delivery)))
                return rows if len(rows) == 3 and all(d.state == "delivered" for d in rows) else None

            wait_for(delivered, timeout=90, interval=0.5)
            stop_search.set()
            for searcher in searchers:
                searcher.join(30)
            with Session(engine) as session:
                attempts = list(session.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id)))
                opened = list(
                    session.scalars(
                        select(AccessRecord).where(AccessRecord.action == "open-task", AccessRecord.username == "li")
                    )
                )
                denied = list(session.scalars(select(AccessRecord).where(AccessRecord.action == "authenticate")))
            engine.dispose()
            reader.close()
            guesser.close()
    finally:
        stop_search.set()
        stop_flap.set()
        link.close()
        pacs.terminate()
        pacs.wait(10)
        drop()

    # The searchers: nothing failed; both web processes served before the kill, only the
    # survivor soon after it, and the restarted one again at the end.
    answers = [a for s in searchers for a in s.answers]
    assert [e for s in searchers for e in s.errors] == []
    assert {status for _, status, _ in answers} == {200}, sorted({status for _, status, _ in answers})
    assert {by for at, _, by in answers if at < killed_at} == {"w0", "w1"}
    assert {by for at, _, by in answers if killed_at + 1.5 < at < restarted_at} == {"w1"}
    assert len(answers) > 100

    # Every report reached the township, each with exactly one acknowledged attempt; the
    # failed ones say why.
    by_delivery: dict[int, list[DeliveryAttempt]] = {}
    for attempt in attempts:
        by_delivery.setdefault(attempt.delivery_id, []).append(attempt)
    assert len(by_delivery) == 3
    for tries in by_delivery.values():
        assert [a.outcome for a in tries].count("delivered") == 1 and tries[-1].outcome == "delivered"
    failed = [a for a in attempts if a.outcome != "delivered"]
    assert failed, "the link never failed under a delivery: the test proves nothing"
    assert all(a.error for a in failed), [a.error for a in failed]
    objects = [pydicom.dcmread(path) for path in received.iterdir()]
    assert sorted((str(ds.StudyInstanceUID), str(ds.SOPClassUID)) for ds in objects) == sorted(
        (uid, cls) for uid in studies for cls in (SR_CLASS, PDF_CLASS)
    )

    # The audit names each client's own address, carried through the balancer.
    assert sorted(r.study_uid for r in opened) == sorted(studies)
    assert {r.source for r in opened} == {READER}
    assert {r.source for r in denied} == {GUESSER}
