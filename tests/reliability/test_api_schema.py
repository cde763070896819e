"""The HTTP interface attacked from its own OpenAPI description (issue G): schemathesis generates
requests for every operation of the running service — with an installation admin's token no
answer is a 5xx, and without a token no operation answers with data (only 401, or 422 for a
request malformed before authentication was looked at)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from pacs.identity.users import add_user, create_token, find_user
from pacs.index.db import transaction
from pacs.ingest import Origin
from pacs.service import Services
from reading.settings import ReadingSettings
from tests.conftest import add_demo_site
from tests.dicomweb.conftest import served
from tests.pacs.helpers import write_ct
from viewer.app import create_app

pytestmark = pytest.mark.slow


@dataclass
class Running:
    url: str
    token: str


_RUNNING: dict[str, Running] = {}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One service for the whole module, with a study in it and an installation admin."""
    from pacs.index.migrate import upgrade
    from pacs.service import build_services
    from pacs.settings import Settings

    home = tmp_path_factory.mktemp("schema")
    settings = Settings(home=home / "var", dicom_port=0, http_port=0)
    upgrade(settings.resolved_database_url)
    services: Services = build_services(settings)
    site_id = add_demo_site(services)
    for path in write_ct(home / "ct", slices=2, seed=71, size=16, kind="head"):
        services.ingest.receive(path, Origin(site_id=site_id, calling_ae="FUDONG_CT", source_address="127.0.0.1"))
    with transaction(services.sessions) as session:
        add_user(session, username="root", role="admin")
        token = create_token(session, find_user(session, "root"))[1]
    try:
        with served(create_app(services, ReadingSettings())) as url:
            _RUNNING["service"] = Running(url, token)
            yield _RUNNING["service"]
    finally:
        services.close()


@pytest.fixture(scope="module")
def api_schema(running: Running) -> Any:
    return schemathesis.openapi.from_url(f"{running.url}/openapi.json")


BOUNDED = settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _operations(api_schema: Any) -> list[Any]:
    return [result.ok() for result in api_schema.get_all_operations()]


def _attack(api_schema: Any, check: Callable[[Any], None]) -> list[str]:
    """Run ``check`` on generated cases of every operation; returns the failures, all of them."""
    failures: list[str] = []
    for operation in _operations(api_schema):

        @BOUNDED
        @given(case=operation.as_strategy())
        def attack(case: Any) -> None:
            check(case)

        try:
            attack()
        except AssertionError as exc:
            failures.append(str(exc).splitlines()[0])
    return failures


def test_no_operation_answers_a_server_error(api_schema: Any, running: Running) -> None:
    def check(case: Any) -> None:
        response = case.call(headers={"Authorization": f"Bearer {running.token}"}, timeout=30)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} {case.query}: {response.status_code} {response.text[:200]}"
        )

    assert _attack(api_schema, check) == []


def test_no_operation_answers_data_without_a_token(api_schema: Any) -> None:
    def check(case: Any) -> None:
        case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        response = case.call(timeout=30)
        # The login is open to anyone: its answers are a refusal of the guessed password, a
        # malformed body or, after some guesses, the throttle.
        allowed = (401, 422, 429) if (case.method, case.path) == ("POST", "/api/session") else (401, 422)
        assert response.status_code in allowed, f"{case.method} {case.formatted_path}: {response.status_code}"
        if response.status_code == 422:  # malformed before the token was looked at: it says only what is wrong
            assert set(response.json()) == {"detail"}

    assert _attack(api_schema, check) == []


def test_the_schema_covers_every_route(api_schema: Any) -> None:
    assert len(_operations(api_schema)) >= 60  # DICOMweb, the reading API, QA, audit and peer review


@pytest.mark.parametrize("backend", ["sqlite-folder", pytest.param("postgres-s3", marks=pytest.mark.postgres)])
def test_an_id_beyond_64_bits_is_the_callers_error(make_services: Callable[..., Services], backend: str) -> None:
    """Found by the schema run: /api/reports/9223372036854775808 answered 500 (SQLite cannot
    bind it; PostgreSQL: numeric value out of range)."""
    import httpx

    services = make_services(backend)
    with transaction(services.sessions) as session:
        add_user(session, username="root", role="admin")
        token = create_token(session, find_user(session, "root"))[1]
    with served(create_app(services, ReadingSettings())) as url:
        for path in ("/api/reports/9223372036854775808", "/api/reports/99999999999999999999"):
            answer = httpx.get(f"{url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert answer.status_code == 422 and "out of range" in answer.text, (path, answer.status_code)
