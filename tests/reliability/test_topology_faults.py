"""Faults in the production topology without containers (issue G): two receivers behind HAProxy
(``send-proxy-v2``), web processes and workers, each its own process, on a PostgreSQL cluster
this test owns and ``moto[server]`` as S3. Each fault with "nothing that got Success is lost,
nothing half-visible, the service recovers by itself":

* the PostgreSQL cluster restarted mid-load: C-STOREs answered 0xA700 (or their association
  lost) while it is down, never Success without a commit; the resend completes;
* the S3 endpoint frozen (SIGSTOP) mid-load and resumed: the same;
* an AI worker SIGKILLed mid-job: the other worker takes the job after the lease and the study
  is pre-screened exactly once.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from pacs.index.db import make_engine, make_sessionmaker, transaction
from pacs.index.models import Change, Job
from pacs.integrity import verify_store
from pacs.settings import Settings, StorageBackend
from pacs.storage import open_store
from tests.conftest import MotoServer, free_port, require, wait_for
from tests.reliability.conftest import bench_driver

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(420)]


@dataclass
class Cluster:
    """A PostgreSQL cluster of this module's own, which its tests may restart."""

    version: str
    name: str
    port: int

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def ctl(self, action: str) -> None:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def new_database(self) -> str:
        name = f"yy_{uuid.uuid4().hex[:8]}"
        admin = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url(name)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    require("pg_createcluster")
    version = sorted(os.listdir("/usr/lib/postgresql"))[-1]
    name, port = f"yy{uuid.uuid4().hex[:6]}", free_port()
    made = subprocess.run(
        ["pg_createcluster", version, name, "-p", str(port), "--start", "--", "--auth=trust"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if made.returncode != 0:
        pytest.fail(f"cannot create a PostgreSQL cluster of the test's own (needs root): {made.stderr}")
    try:
        yield Cluster(version, name, port)
    finally:
        subprocess.run(["pg_dropcluster", "--stop", version, name], capture_output=True, timeout=120)


def _s3(moto: MotoServer) -> dict[str, str]:
    return {
        "YUNYING_STORAGE_BACKEND": "s3",
        "YUNYING_S3_ENDPOINT": moto.endpoint,
        "YUNYING_S3_BUCKET": f"t-{uuid.uuid4().hex[:12]}",
        "YUNYING_S3_ACCESS_KEY": "test",
        "YUNYING_S3_SECRET_KEY": "test",
        "YUNYING_S3_CONNECT_TIMEOUT_S": "1",
        "YUNYING_S3_READ_TIMEOUT_S": "2",
        "YUNYING_S3_RETRIES": "0",
        # Long enough for any ingest in flight between its store put and its index commit (a grace
        # of 0 let the sweep delete an object whose row committed a moment later), short enough
        # for the sweep to remove what refused instances left before the final check.
        "YUNYING_ORPHAN_GRACE_S": "8",
        "YUNYING_ORPHAN_SWEEP_INTERVAL_S": "2",
    }


def _check_everything(url: str, env: dict[str, str], home: Path, driver: ModuleType, sent: list[list[Path]]) -> None:
    checked = driver.verify_index(url, home, sent)
    assert checked == {"missing": 0, "wrong_sha256": 0, "duplicated": 0}, checked
    settings = Settings(
        home=home,
        database_url=url,
        storage_backend=StorageBackend.S3,
        s3_endpoint=env["YUNYING_S3_ENDPOINT"],
        s3_bucket=env["YUNYING_S3_BUCKET"],
        s3_access_key="test",
        s3_secret_key="test",
    )
    engine = make_engine(url)
    try:
        result = verify_store(open_store(settings), make_sessionmaker(engine), orphan_grace=timedelta(0))
    finally:
        engine.dispose()
    assert result.ok, [str(f) for f in result.findings]  # objects of refused instances: swept by now


def _load_with_fault(
    cluster: Cluster, moto: MotoServer, tmp_path: Path, data_cache: Path, fault: Any, recover: Any
) -> None:
    require("storescu")
    driver = bench_driver()
    url = cluster.new_database()
    env = _s3(moto)
    studies = driver.studies(data_cache, 4, 120, 128)
    home = tmp_path / "var"
    with driver.topology(home, url, extra_env=env, webs=1) as world:
        outcomes: list[dict[str, Any]] = [{} for _ in studies]

        def send(index: int) -> None:
            outcomes[index] = driver.send_study(world.dicom_port, studies[index])

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(studies))]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # the studies are on their way
        fault()
        time.sleep(3.0)
        recover()
        for thread in threads:
            thread.join(240)
        refused = [s for o in outcomes for s in o["statuses"]]
        assert sum(o["failures"] for o in outcomes) > 0, "the fault came too late to be seen"
        # While down: out of resources, or the association lost — never another failure status.
        assert all("OutOfResources" in s or s.startswith("E:") for s in refused), refused
        # The technologist resends whatever was not answered Success; the service recovered by itself.
        for index, files in enumerate(studies):
            if outcomes[index]["failures"]:
                again = wait_for(lambda f=files: _resend(driver, world.dicom_port, f), timeout=60, interval=1)
                assert again["failures"] == 0, again["statuses"]
        time.sleep(11)  # the receiver's orphan sweep (every 2 s, 8 s grace) removes what refused instances left
        _check_everything(url, env, home, driver, studies)


def _resend(driver: ModuleType, port: int, files: list[Path]) -> dict[str, Any] | None:
    outcome: dict[str, Any] = driver.send_study(port, files)
    return outcome if outcome["failures"] == 0 else None


def test_postgresql_restarted_mid_load(
    cluster: Cluster, moto_server: MotoServer, tmp_path: Path, data_cache: Path
) -> None:
    _load_with_fault(
        cluster, moto_server, tmp_path, data_cache, lambda: cluster.ctl("stop"), lambda: cluster.ctl("start")
    )


def test_s3_frozen_mid_load(cluster: Cluster, moto_server: MotoServer, tmp_path: Path, data_cache: Path) -> None:
    try:
        _load_with_fault(cluster, moto_server, tmp_path, data_cache, moto_server.freeze, moto_server.thaw)
    finally:
        moto_server.thaw()


def test_an_ai_worker_killed_mid_job_leaves_it_to_the_other(
    cluster: Cluster, moto_server: MotoServer, tmp_path: Path, data_cache: Path
) -> None:
    require("storescu")
    driver = bench_driver()
    url = cluster.new_database()
    env = {**_s3(moto_server), "YUNYING_STABILITY_SECONDS": "2", "YUNYING_STABILITY_POLL_S": "0.5",
           "YUNYING_AI_LEASE_S": "6", "YUNYING_AI_POLL_S": "0.5"}  # fmt: skip
    [study] = driver.studies(data_cache, 1, 300, 256)
    with driver.topology(tmp_path / "var", url, extra_env=env, webs=0, ai_workers=2) as world:
        time.sleep(8)  # the workers load their models
        outcome = driver.send_study(world.dicom_port, study)
        assert outcome["failures"] == 0
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)

        def taken() -> str | None:
            with transaction(sessions) as session:
                owner = session.scalar(
                    select(Job.lease_owner).where(Job.kind == "ai.prescreen", Job.state == "running")
                )
            return owner

        owner = wait_for(taken, timeout=60, interval=0.05)
        pid = int(re.search(r":(\d+):", owner).group(1))  # type: ignore[union-attr]  # ai@host:pid:xxxx
        assert pid in {p.pid for p in world.ai_workers}
        os.kill(pid, signal.SIGKILL)

        def done() -> int | None:
            with transaction(sessions) as session:
                count = session.scalar(select(func.count()).where(Change.kind.in_(["ai.done", "ai.failed"])))
            return count or None

        wait_for(done, timeout=120, interval=0.5)
        time.sleep(2)
        with transaction(sessions) as session:
            finished = session.scalars(select(Change.actor).where(Change.kind.in_(["ai.done", "ai.failed"]))).all()
            handed = session.scalar(select(func.count()).where(Change.kind == "study.ready_for_reading"))
            job = session.scalars(select(Job).where(Job.kind == "ai.prescreen")).one()
        engine.dispose()
    assert len(set(finished)) == 1 and owner not in finished  # the survivor did it, once per model
    assert handed == 1 and job.state == "done" and job.attempts >= 2
