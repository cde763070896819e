"""The ``yunying`` command as an administrator uses it: clear errors that name the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from pacs.settings import Mode, Settings
from tests.conftest import receiver_env, yunying
from tests.pacs.helpers import small_ct, write_ct


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = receiver_env(tmp_path / "var")
    yunying("db", "upgrade", env=env)
    return env


def test_every_command_has_help(env: dict[str, str]) -> None:
    for command in (["--help"], ["import", "--help"], ["ae", "add", "--help"]):
        done = yunying(*command, env=env)
        assert "Usage" in done.stdout


def test_sites_and_aes(env: dict[str, str]) -> None:
    yunying(
        "site",
        "add",
        "Fudong Health Centre",
        "--tier",
        "township",
        "--consortium",
        "Dongtai",
        "--return-ae",
        "FUDONG_PACS",
        "--return-host",
        "10.2.0.15",
        "--return-port",
        "104",
        env=env,
    )
    yunying(
        "ae",
        "add",
        "FUDONG_CT",
        "--site",
        "Fudong Health Centre",
        "--address",
        "10.2.0.0/24",
        "--charset",
        "GB18030",
        env=env,
    )
    sites = [
        json.loads(line) for line in yunying("site", "list", "--json", env=env).stdout.splitlines() if line.strip()
    ]
    assert sites == [
        {
            "id": 1,
            "name": "Fudong Health Centre",
            "tier": "township",
            "consortium": "Dongtai",
            "aes": ["FUDONG_CT"],
            "return": ["FUDONG_PACS", "10.2.0.15", 104],
        }
    ]
    assert "10.2.0.0/24" in yunying("ae", "list", env=env).stdout
    changes = [json.loads(line) for line in yunying("changes", env=env).stdout.splitlines()]
    assert [c["kind"] for c in changes] == ["site.created", "site.ae_added"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["site", "add", "X", "--tier", "city", "--consortium", "C"], "tier must be one of"),
        (["ae", "add", "FUDONG_CT", "--site", "Nowhere", "--address", "127.0.0.1"], "no site named 'Nowhere'"),
        (["ae", "add", "FAR_TOO_LONG_AE_TITLE", "--site", "Fudong", "--address", "127.0.0.1"], "not valid"),
        (["ae", "add", "OK", "--site", "Fudong", "--address", "10.0.0.999"], "not an IP address or CIDR"),
        (["ae", "add", "OK", "--site", "Fudong", "--address", "10.0.0.1", "--charset", "BIG5"], "assumed charset"),
        (["import", "/nonexistent", "--site", "Fudong"], "does not exist"),
    ],
)
def test_bad_administrative_input_is_refused_clearly(env: dict[str, str], args: list[str], message: str) -> None:
    yunying("site", "add", "Fudong", "--tier", "township", "--consortium", "C", env=env)
    done = yunying(*args, env=env, check=False)
    assert done.returncode != 0
    assert message in (done.stdout + done.stderr).replace("\n", " ").replace("│", " ")


def test_duplicate_site_and_ae_refused(env: dict[str, str]) -> None:
    yunying("site", "add", "Fudong", "--tier", "township", "--consortium", "C", env=env)
    assert (
        "already exists"
        in yunying("site", "add", "Fudong", "--tier", "township", "--consortium", "C", env=env, check=False).stderr
    )
    yunying("ae", "add", "FUDONG_CT", "--site", "Fudong", "--address", "127.0.0.1", env=env)
    assert (
        "already configured"
        in yunying("ae", "add", "FUDONG_CT", "--site", "Fudong", "--address", "127.0.0.1", env=env, check=False).stderr
    )


def test_import_uses_the_ingest_path(env: dict[str, str], tmp_path: Path, data_cache: Path) -> None:
    yunying("site", "add", "Fudong", "--tier", "township", "--consortium", "C", env=env)
    folder = tmp_path / "archive"
    files = write_ct(folder / "ct", slices=5, seed=81, size=64)
    (folder / "notes.txt").write_text("not DICOM")
    # A bare data set without file meta (older archives) is given Part-10 framing.
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, small_ct(seed=82))
    (folder / "bare.dcm").write_bytes(buffer.getvalue())
    done = yunying("import", str(folder), "--site", "Fudong", env=env)
    assert "stored: 6" in done.stdout
    assert "notes.txt" in done.stderr
    again = yunying("import", str(folder / "ct"), "--site", "Fudong", env=env)
    assert "duplicate: 5" in again.stdout
    studies = [json.loads(line) for line in yunying("study", "list", "--json", env=env).stdout.splitlines()]
    assert sorted(s["num_instances"] for s in studies) == [1, 5]
    assert len(files) == 5


def test_production_refuses_insecure_defaults(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="YUNYING_SECRET_KEY"):
        Settings(mode=Mode.PRODUCTION, home=tmp_path)
    with pytest.raises(ValidationError, match="PostgreSQL"):
        Settings(mode=Mode.PRODUCTION, secret_key="x" * 40, home=tmp_path)
    secure: dict[str, Any] = {
        "mode": Mode.PRODUCTION,
        "secret_key": "x" * 40,
        "database_url": "postgresql+psycopg://u@db/y",
        "home": tmp_path,
    }
    with pytest.raises(ValidationError, match="plain DICOM listens beyond loopback"):
        Settings(**secure)  # the default host is every interface
    ok = Settings(**secure, dicom_host="127.0.0.1", dicom_tls_port=2762)
    assert ok.mode is Mode.PRODUCTION
    assert Settings(**secure, dicom_plain_allowed=True).dicom_plain_allowed  # deliberate, and said so
    secure["dicom_host"] = "127.0.0.1"
    with pytest.raises(ValidationError, match="CORS_ORIGINS holds"):
        Settings(**secure, cors_origins=["*"])
    with pytest.raises(ValidationError, match="LOG_LEVEL=DEBUG"):
        Settings(**secure, log_level="debug")
    with pytest.raises(ValidationError, match="YUNYING_HTTP_TLS_CERT and YUNYING_HTTP_TLS_KEY"):
        Settings(**secure, http_tls_cert=tmp_path / "web.pem")
    env = receiver_env(tmp_path, mode="production")
    done = yunying("receiver", env=env, check=False)
    assert done.returncode == 2 and "refusing to start in production mode" in done.stderr


def test_unreachable_database_names_the_setting(tmp_path: Path) -> None:
    env = receiver_env(tmp_path, database_url="postgresql+psycopg://postgres@127.0.0.1:9/none")
    done = yunying("db", "upgrade", env=env, check=False)
    assert done.returncode != 0 and "YUNYING_DATABASE_URL" in done.stderr


@pytest.mark.timeout(60)
def test_sigterm_stops_every_receiver_process(env: dict[str, str], tmp_path: Path) -> None:
    import signal
    import subprocess
    import time

    from tests.conftest import spawn_receiver

    receiver = spawn_receiver(env, tmp_path / "rx.log", "--processes", "2")
    children = subprocess.run(["pgrep", "-P", str(receiver.process.pid)], capture_output=True, text=True).stdout.split()
    assert children, "the supervisor started no worker"
    receiver.process.send_signal(signal.SIGTERM)
    receiver.process.wait(20)
    receiver.log_handle.close()
    deadline = time.monotonic() + 15
    alive = children
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if _running(pid)]
        time.sleep(0.1)
    assert alive == [], f"workers {alive} outlived the supervisor"


def _running(pid: str) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_users_and_tokens(env: dict[str, str]) -> None:
    yunying("site", "add", "Fudong", "--tier", "township", "--consortium", "C", env=env)
    refused = yunying("user", "add", "li.wei", "--role", "site", env=env, check=False)
    assert refused.returncode != 0 and "needs --site" in refused.stderr
    refused = yunying("user", "add", "li.wei", "--role", "surgeon", env=env, check=False)
    assert refused.returncode != 0 and "admin | reader | site | qa".replace(" | ", ", ") in refused.stderr
    yunying("user", "add", "li.wei", "--role", "qa", "--consortium", "C", env=env)
    assert "li.wei" in yunying("user", "list", env=env).stdout

    both = yunying("token", "create", "--user", "li.wei", "--service", "ris", env=env, check=False)
    assert both.returncode != 0 and "exactly one of" in both.stderr
    orphan = yunying("token", "create", "--service", "fudong-ris", env=env, check=False)
    assert orphan.returncode != 0 and "--site" in orphan.stderr
    created = yunying("token", "create", "--service", "fudong-ris", "--site", "Fudong", "--days", "30", env=env)
    token = created.stdout.strip()
    assert token.startswith("yy_") and len(token) > 40 and "shown once" in created.stderr
    wide = {**env, "COLUMNS": "200"}  # rich shortens tables to 80 columns without a terminal
    listed = yunying("token", "list", env=wide).stdout
    assert token[:10] in listed and token not in listed and "active" in listed
    yunying("token", "revoke", "1", env=env)
    assert "revoked" in yunying("token", "list", env=wide).stdout
    unknown = yunying("token", "revoke", "99", env=env, check=False)
    assert unknown.returncode != 0 and "yunying token list" in unknown.stderr
