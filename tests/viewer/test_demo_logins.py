"""The demo logins of `make demo`: one per role, each opening its own part of the web
application; production refuses to start while a public demo password still works, and
`yunying demo` refuses to run in production at all."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from pacs.identity.passwords import set_password
from pacs.identity.users import find_user, set_active
from pacs.index.db import transaction
from pacs.service import Services
from tests.conftest import empty_pg, receiver_env, yunying
from tests.dicomweb.conftest import served
from viewer.app import create_app
from viewer.demo import DEMO_LOGINS, demo_passwords_in_use, seed_consortium, seed_demo_logins, seed_readers


def seed(services: Services) -> None:
    with transaction(services.sessions) as session:
        seed_consortium(session)
        seed_readers(session)
        seed_demo_logins(session)


def test_each_demo_login_opens_its_role(make_services: Callable[..., Services]) -> None:
    services = make_services()
    seed(services)
    seed(services)  # a re-run changes nothing and logs nobody out
    expected = {
        "demo-li": ("reader", None),
        "demo-fudong-tech": ("site", "Fudong Health Centre"),
        "demo-qa": ("qa", None),
        "demo-admin": ("admin", None),
    }
    with served(create_app(services)) as url:
        for demo in DEMO_LOGINS:
            answer = httpx.post(f"{url}/api/session", json={"login": demo.login, "password": demo.password})
            assert answer.status_code == 200, (demo.login, answer.text)
            user = answer.json()["user"]
            assert (user["role"], user["site"]) == expected[demo.login]


@pytest.mark.postgres
def test_production_refuses_demo_passwords_and_the_demo_itself(pg_database: str, tmp_path: Path) -> None:
    empty_pg(pg_database)
    env = receiver_env(
        tmp_path / "var", mode="production", database_url=pg_database, secret_key="s" * 8 + "-a-long-random-secret-xx"
    )
    env["COLUMNS"] = "300"  # rich wraps error messages at 80 columns without a terminal
    refused = yunying("demo", "--exit-after-push", env=env, check=False)
    assert refused.returncode != 0 and "does not run in production" in refused.stderr
    from pacs.service import build_services
    from pacs.settings import Settings

    services = build_services(Settings(home=tmp_path / "var", database_url=pg_database))
    try:
        seed(services)
        web = yunying("web", env=env, check=False, timeout=60)
        assert web.returncode != 0, web.stdout
        for demo in DEMO_LOGINS:
            assert demo.login in web.stderr
        assert "yunying user password LOGIN" in web.stderr
        with transaction(services.sessions) as session:
            for demo in DEMO_LOGINS[:3]:
                set_password(session, find_user(session, demo.login), f"{demo.password}-but-changed")
            set_active(session, find_user(session, "demo-admin"), False)
        with transaction(services.sessions) as session:
            assert demo_passwords_in_use(session) == []
    finally:
        services.close()
