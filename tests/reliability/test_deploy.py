"""The production shape's files (issue G), checked without a container engine (none runs on the
development machine): `docker-compose config` accepts docker/compose.yaml and it has every
service of DESIGN.md's production shape with a health check; the Dockerfile is multi-stage and
runs as a non-root user; HAProxy's configuration is valid and sends PROXY v2 to receivers
that trust its network; production refuses to start without its secrets."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
SECRETS = {
    "YUNYING_SECRET_KEY": "s" * 40,
    "POSTGRES_PASSWORD": "pg-secret",
    "MINIO_ROOT_USER": "yunying",
    "MINIO_ROOT_PASSWORD": "minio-secret",
}
ONE_SHOT = {"migrate", "minio-init"}


def _config(**env: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is needed to validate docker/compose.yaml: apt-get install docker-compose")
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        ["docker-compose", "-f", str(DOCKER / "compose.yaml"), "config"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _services() -> dict[str, Any]:
    done = _config(**SECRETS)
    assert done.returncode == 0, done.stderr
    services: dict[str, Any] = yaml.safe_load(done.stdout)["services"]
    return services


def test_compose_has_the_production_shape_with_health_checks() -> None:
    services = _services()
    assert {"postgres", "minio-1", "minio-2", "minio-3", "minio-4", "minio-init", "migrate"} <= set(services)
    assert {"receiver-1", "receiver-2", "haproxy", "web-1", "web-2", "nginx"} <= set(services)
    assert {"ai-worker", "reading-worker", "delivery-worker"} <= set(services)
    for name, service in services.items():
        if name not in ONE_SHOT:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    # MinIO distributed, erasure-coded over 4 nodes × 2 drives.
    assert "http://minio-{1...4}/data{1...2}" in services["minio-1"]["command"]
    # Everything of Yunying waits for the schema and the bucket.
    for name in ("receiver-1", "web-1", "ai-worker", "reading-worker", "delivery-worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["environment"]["YUNYING_MODE"] == "production"
    # Receivers: plain DICOM on loopback only, TLS for the sites, the balancer's network trusted.
    receiver = services["receiver-1"]["environment"]
    assert receiver["YUNYING_DICOM_HOST"] == "127.0.0.1" and receiver["YUNYING_DICOM_TLS_PORT"] == "2762"
    subnet = ipaddress.ip_network(
        yaml.safe_load(_config(**SECRETS).stdout)["networks"]["default"]["ipam"]["config"][0]["subnet"]
    )
    assert [ipaddress.ip_network(n) for n in yaml.safe_load(receiver["YUNYING_DICOM_PROXY_FROM"])] == [subnet]


def test_compose_refuses_to_render_without_its_secrets() -> None:
    done = _config(**{k: v for k, v in SECRETS.items() if k != "YUNYING_SECRET_KEY"})
    assert done.returncode != 0 and "set YUNYING_SECRET_KEY" in done.stderr


def test_dockerfile_is_multi_stage_and_runs_unprivileged() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)$", text, re.M)
    assert stages == ["frontend", "build", "runtime"]
    runtime = text[text.index("AS runtime") :]
    assert re.search(r"^USER 10001$", runtime, re.M) and "torch==2.13.0" in text
    assert "npm ci" in text  # the front end is built in the node stage, nothing fetched at run time


def test_haproxy_config_is_valid_and_sends_proxy_v2() -> None:
    if shutil.which("haproxy") is None:
        pytest.fail("haproxy is needed: apt-get install haproxy")
    done = subprocess.run(["haproxy", "-c", "-f", str(DOCKER / "haproxy.cfg")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    servers = [line for line in (DOCKER / "haproxy.cfg").read_text().splitlines() if line.strip().startswith("server ")]
    assert len(servers) == 2 and all("send-proxy-v2" in line for line in servers)
