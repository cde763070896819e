"""Passwords on their own (pacs/identity/passwords.py): the strength rules name what to change,
only an argon2id hash is stored, an outdated hash is redone at the next good login, and an
unknown login, a service account or a deactivated user are refused like a wrong password."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from argon2 import PasswordHasher

from pacs.identity.passwords import (
    PasswordRefused,
    check_strength,
    login_candidate,
    password_accepted,
    rehash_if_outdated,
    set_password,
)
from pacs.identity.users import add_user, find_user, set_active
from pacs.index.db import transaction
from pacs.service import Services
from tests.conftest import add_demo_site


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short-1", "at least 10 characters"),
        ("x" * 1025, "at most 1024"),
        (" padded-password ", "start or end with a space"),
        ("zhou.ct-2026-x", "login name"),
        ("abababababab", "4 different characters"),
    ],
)
def test_a_weak_password_is_refused_naming_the_rule(password: str, rule: str) -> None:
    with pytest.raises(PasswordRefused, match=rule):
        check_strength(password, username="zhou.ct")


def test_only_a_hash_is_stored_and_an_outdated_one_is_redone(make_services: Callable[..., Services]) -> None:
    services = make_services()
    add_demo_site(services)
    with transaction(services.sessions) as session:
        user = add_user(session, username="zhou.ct", role="site", site="Fudong Health Centre")
        set_password(session, user, "CT-room-7-Fudong")
        assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
        assert "CT-room-7" not in user.password_hash and user.password_changed_at is not None
        user.password_hash = PasswordHasher(time_cost=1, memory_cost=8192).hash("CT-room-7-Fudong")  # an old hash
    with transaction(services.sessions) as session:
        candidate = login_candidate(session, "zhou.ct")
        assert password_accepted(candidate, "CT-room-7-Fudong")
        user = find_user(session, "zhou.ct")
        rehash_if_outdated(user, "CT-room-7-Fudong")
        assert user.password_hash is not None and "m=65536,t=3,p=4" in user.password_hash


def test_unknown_service_and_deactivated_logins_are_refused_alike(make_services: Callable[..., Services]) -> None:
    services = make_services()
    add_demo_site(services)
    with transaction(services.sessions) as session:
        ris = add_user(session, username="fudong-ris", role="site", site="Fudong Health Centre", is_service=True)
        with pytest.raises(PasswordRefused, match="token"):
            set_password(session, ris, "CT-room-7-Fudong")
        person = add_user(session, username="zhou.ct", role="site", site="Fudong Health Centre")
        set_password(session, person, "CT-room-7-Fudong")
        set_active(session, person, False)
    with transaction(services.sessions) as session:
        assert login_candidate(session, "nobody") is None
        assert login_candidate(session, "fudong-ris") is None  # no password at all
        deactivated = login_candidate(session, "zhou.ct")
    assert not password_accepted(None, "CT-room-7-Fudong")
    assert deactivated is not None and not password_accepted(deactivated, "CT-room-7-Fudong")
