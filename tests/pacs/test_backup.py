"""Backup and restore (issue G). The embedded shape: ``yunying backup create`` while a receiver
runs and takes C-STOREs, ``yunying backup restore`` into a fresh home, and ``yunying verify``
finds the restored index and objects in agreement. The production shape: the documented
pg_dump / pg_restore round trip of the index against the same S3 bucket verifies too."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pacs.index.db import make_engine, make_sessionmaker
from pacs.integrity import verify_store
from tests.conftest import PG_ADMIN_URL, Fixture, receiver_env, require, spawn_receiver, storescu, yunying
from tests.pacs.helpers import write_ct


def test_an_embedded_backup_taken_under_load_restores_and_verifies(tmp_path: Path) -> None:
    require("storescu")
    home = tmp_path / "var"
    env = {**receiver_env(home, orphan_grace_s=0), "COLUMNS": "200"}
    yunying("db", "upgrade", env=env)
    yunying("site", "add", "Fudong", "--tier", "township", "--consortium", "Dongtai", env=env)
    yunying("ae", "add", "FUDONG_CT", "--site", "Fudong", "--address", "127.0.0.1", env=env)
    receiver = spawn_receiver(env, tmp_path / "receiver.log")
    try:
        first = write_ct(tmp_path / "ct1", slices=6, seed=21, size=64, kind="head")
        assert storescu(receiver.port, first)[:2] == (6, 0)
        # A second study arrives while the backup is taken: whatever the snapshot holds verifies.
        second = write_ct(tmp_path / "ct2", slices=20, seed=22, size=64, kind="head")
        sending = threading.Thread(target=storescu, args=(receiver.port, second))
        sending.start()
        backup = tmp_path / "backup-1"
        made = yunying("backup", "create", str(backup), env=env)
        sending.join()
    finally:
        receiver.stop()
    assert "hard-linked" in made.stdout
    manifest = json.loads((backup / "MANIFEST.json").read_text())
    assert manifest["objects"] >= 6 and manifest["schema_revision"]
    refused = yunying("backup", "create", str(backup), env=env, check=False)
    assert refused.returncode == 2 and "not empty" in refused.stdout + refused.stderr

    fresh = {**receiver_env(tmp_path / "restored", orphan_grace_s=0), "COLUMNS": "200"}
    restored = yunying("backup", "restore", str(backup), env=fresh)
    assert "Run `yunying verify`" in restored.stdout
    verified = yunying("verify", "--quarantine-orphans", env=fresh)  # objects copied after the snapshot
    assert " 0 missing, 0 truncated, 0 altered" in verified.stdout
    studies = yunying("study", "list", env=fresh).stdout
    assert "Fudong" in studies
    again = yunying("backup", "restore", str(backup), env=fresh, check=False)
    assert again.returncode == 2 and "--force" in again.stdout + again.stderr
    yunying("backup", "restore", str(backup), "--force", env=fresh)


def test_backup_refuses_the_production_shape_and_names_its_tools(tmp_path: Path) -> None:
    env = receiver_env(tmp_path / "var", database_url="postgresql+psycopg://x@127.0.0.1:1/none")
    refused = yunying("backup", "create", str(tmp_path / "b"), env=env, check=False)
    assert refused.returncode == 2 and "pg_dump" in refused.stdout + refused.stderr


@pytest.mark.postgres
def test_the_documented_pg_dump_round_trip_verifies_against_the_bucket(
    start_receiver: Callable[..., Fixture], tmp_path: Path
) -> None:
    require("storescu")
    require("pg_dump")
    receiver = start_receiver("postgres-s3", orphan_grace_s=0)
    files = write_ct(tmp_path / "ct", slices=5, seed=23, size=64, kind="head")
    assert storescu(receiver.port, files)[:2] == (5, 0)
    url = make_url(receiver.services.settings.database_url)
    dump = tmp_path / "index.dump"
    libpq = f"postgresql://{url.username}@{url.host}:{url.port}"
    subprocess.run(["pg_dump", "-Fc", "-f", str(dump), f"{libpq}/{url.database}"], check=True, timeout=120)
    copy = f"{url.database}_restored"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{copy}"'))
    try:
        subprocess.run(["pg_restore", "-d", f"{libpq}/{copy}", str(dump)], check=True, timeout=120)
        engine = make_engine(str(url.set(database=copy)))
        try:
            result = verify_store(receiver.services.store, make_sessionmaker(engine), orphan_grace=timedelta(0))
        finally:
            engine.dispose()
        assert result.ok and result.objects_checked == 5
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)'))
        admin.dispose()
