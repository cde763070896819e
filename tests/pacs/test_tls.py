"""DICOM over TLS (issue G): dcmtk's storescu stores with the site AE's certificate; no
certificate, another CA's, another AE's and a revoked one are refused (the revocation without a
restart); a client that connects and never speaks TLS does not hold up anyone else; and the
``yunying pki`` commands make what the receiver needs."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom import AE
from sqlalchemy import func, select

from pacs.index.db import transaction
from pacs.index.models import Instance
from pacs.pki import init_ca, issue_server, issue_site, revoke
from tests.conftest import VENV_BIN, Fixture, free_port, receiver_env, require, yunying
from tests.pacs.helpers import write_ct

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    folder = tmp_path / "pki"
    init_ca(folder, "Dongtai")
    issue_server(folder, ["127.0.0.1", "localhost"])
    issue_site(folder, "FUDONG_CT", "Fudong Health Centre")
    issue_site(folder, "FUDONG_DR", "Fudong Health Centre")
    return folder


@pytest.fixture
def tls_receiver(start_receiver: Callable[..., Fixture], pki: Path) -> Fixture:
    return start_receiver(dicom_tls_port=free_port(), pki_dir=pki, tls_handshake_timeout_s=2)


def _stored(receiver: Fixture) -> int:
    with transaction(receiver.services.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(Instance)) or 0)


def _client_context(pki: Path, ae: str | None, *, ca: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca or pki / "ca.pem"))
    if ae is not None:
        context.load_cert_chain(pki / f"{ae}.pem", pki / f"{ae}.key")
    return context


def _store(receiver: Fixture, pki: Path, path: Path, *, ae: str, cert: str | None, ca: Path | None = None) -> str:
    """C-STORE one file over TLS with pynetdicom; returns 'stored', 'rejected' or 'refused'."""
    client = AE(ae_title=ae)
    client.add_requested_context(CT_IMAGE_STORAGE)
    client.acse_timeout = client.network_timeout = 5
    try:
        assoc = client.associate(
            "127.0.0.1",
            receiver.receiver.tls_port,
            ae_title="YUNYING",
            tls_args=(_client_context(pki, cert, ca=ca), "127.0.0.1"),
        )
    except (ssl.SSLError, OSError):
        return "refused"  # the handshake failed on our side
    try:
        if assoc.is_rejected:
            return "rejected"
        if not assoc.is_established:
            return "refused"
        status = assoc.send_c_store(dcmread(path))
        return "stored" if status and status.Status == 0 else f"status {status}"
    finally:
        if assoc.is_established:
            assoc.release()
        # FIELD-NOTES: pynetdicom leaves a refused association's socket open.
        if assoc.dul.socket is not None and assoc.dul.socket.socket is not None:
            assoc.dul.socket.socket.close()


def test_storescu_over_tls_with_the_site_certificate(tls_receiver: Fixture, pki: Path, tmp_path: Path) -> None:
    require("storescu")
    files = write_ct(tmp_path / "ct", slices=3, seed=41, size=32, kind="head")
    args = [
        "storescu", "-v", "-aet", "FUDONG_CT", "-aec", "YUNYING",
        "+tls", str(pki / "FUDONG_CT.key"), str(pki / "FUDONG_CT.pem"), "+cf", str(pki / "ca.pem"),
        "127.0.0.1", str(tls_receiver.receiver.tls_port), *map(str, files),
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert output.count("Received Store Response (Success)") == 3, output
    assert _stored(tls_receiver) == 3


def test_wrong_or_missing_certificates_are_refused(tls_receiver: Fixture, pki: Path, tmp_path: Path) -> None:
    [path] = write_ct(tmp_path / "ct", slices=1, seed=42, size=32, kind="head")
    assert _store(tls_receiver, pki, path, ae="FUDONG_CT", cert=None) == "refused"  # no client certificate
    stranger = tmp_path / "other-ca"
    init_ca(stranger, "Elsewhere")
    issue_site(stranger, "FUDONG_CT", "Fudong Health Centre")
    assert _store(tls_receiver, stranger, path, ae="FUDONG_CT", cert="FUDONG_CT", ca=pki / "ca.pem") == "refused"
    # The DR's certificate presented by a caller claiming to be the CT: A-ASSOCIATE-RJ.
    assert _store(tls_receiver, pki, path, ae="FUDONG_CT", cert="FUDONG_DR") == "rejected"
    assert _stored(tls_receiver) == 0
    assert _store(tls_receiver, pki, path, ae="FUDONG_CT", cert="FUDONG_CT") == "stored"


def test_a_revoked_certificate_is_refused_from_the_next_connection(
    tls_receiver: Fixture, pki: Path, tmp_path: Path
) -> None:
    [first, second] = write_ct(tmp_path / "ct", slices=2, seed=43, size=32, kind="head")
    assert _store(tls_receiver, pki, first, ae="FUDONG_CT", cert="FUDONG_CT") == "stored"
    time.sleep(0.01)  # a new CRL mtime even on coarse file-system clocks
    revoke(pki, "FUDONG_CT")
    assert _store(tls_receiver, pki, second, ae="FUDONG_CT", cert="FUDONG_CT") == "refused"
    assert _store(tls_receiver, pki, second, ae="FUDONG_DR", cert="FUDONG_DR") == "stored"  # the other AE still may


def test_a_silent_client_does_not_block_the_tls_port(tls_receiver: Fixture, pki: Path, tmp_path: Path) -> None:
    [path] = write_ct(tmp_path / "ct", slices=1, seed=44, size=32, kind="head")
    with socket.create_connection(("127.0.0.1", tls_receiver.receiver.tls_port)):  # connects, never says hello
        started = time.monotonic()
        assert _store(tls_receiver, pki, path, ae="FUDONG_CT", cert="FUDONG_CT") == "stored"
        assert time.monotonic() - started < 2  # not after the silent one's 2 s handshake deadline


def test_pki_commands_make_what_the_receiver_needs(tmp_path: Path) -> None:
    env = {**receiver_env(tmp_path / "var"), "COLUMNS": "200"}
    yunying("db", "upgrade", env=env)
    yunying("site", "add", "Fudong", "--tier", "township", "--consortium", "Dongtai", env=env)
    yunying("ae", "add", "FUDONG_CT", "--site", "Fudong", "--address", "127.0.0.1", env=env)
    yunying("pki", "init", "--consortium", "Dongtai", env=env)
    again = yunying("pki", "init", "--consortium", "Dongtai", env=env, check=False)
    assert again.returncode == 2 and "keep it" in again.stdout + again.stderr
    yunying("pki", "issue-server", "--host", "127.0.0.1", env=env)
    made = yunying("pki", "issue-site", "FUDONG_CT", env=env)
    assert "FUDONG_CT of Fudong" in made.stdout
    unknown = yunying("pki", "issue-site", "NOBODY", env=env, check=False)
    assert unknown.returncode == 2 and "yunying ae add" in unknown.stdout + unknown.stderr
    folder = tmp_path / "var" / "pki"
    assert (folder / "FUDONG_CT.key").stat().st_mode & 0o077 == 0  # the key is the owner's only
    assert "Revoked 1" in yunying("pki", "revoke", "FUDONG_CT", env=env).stdout
    listed = yunying("pki", "list", env=env).stdout
    assert "FUDONG_CT (Fudong)" in listed and "server" in listed
    # A TLS port without a server certificate stops the receiver with the fix.
    (folder / "server.pem").unlink()
    tls_env = {**env, "YUNYING_DICOM_TLS_PORT": str(free_port()), "YUNYING_DICOM_PORT": str(free_port())}
    refused = yunying("receiver", env=tls_env, check=False, timeout=60)
    assert refused.returncode == 2 and "yunying pki issue-server" in refused.stdout + refused.stderr


def test_yunying_web_serves_https_with_a_certificate_of_the_pki(pki: Path, tmp_path: Path) -> None:
    import httpx

    from tests.conftest import wait_for

    port = free_port()
    env = receiver_env(
        tmp_path / "var",
        http_port=port,
        http_host="127.0.0.1",
        http_tls_cert=pki / "server.pem",
        http_tls_key=pki / "server.key",
    )
    yunying("db", "upgrade", env=env)
    log = (tmp_path / "web.log").open("wb")
    process = subprocess.Popen([str(VENV_BIN / "yunying"), "web"], env=env, stdout=log, stderr=log)
    try:
        url = f"https://127.0.0.1:{port}"

        def up() -> httpx.Response | None:
            try:
                return httpx.get(f"{url}/readyz", verify=ssl.create_default_context(cafile=str(pki / "ca.pem")))
            except httpx.TransportError:
                return None

        ready = wait_for(up, timeout=30, interval=0.3)
        assert ready.status_code == 200 and ready.json()["status"] == "ok"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)  # no plain HTTP on the HTTPS port
    finally:
        process.terminate()
        process.wait(15)
        log.close()
