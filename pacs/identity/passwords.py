"""Passwords of people who log in to the web application: argon2id hashes, never the password.

argon2-cffi's default parameters are RFC 9106's second recommended profile (argon2id, 64 MiB,
3 passes, 4 lanes): about 50 ms a check here, cheap for a login and costly for a guesser with
a stolen table. A hash made under older parameters is redone at the next good login.

Service accounts (a RIS, a workstation) have no password: they use tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs import events
from pacs.identity.sites import IdentityError
from pacs.identity.users import end_sessions
from pacs.index.db import append_change
from pacs.index.models import User
from pacs.index.types import utcnow

MIN_LENGTH: Final = 10
MAX_LENGTH: Final = 1024  # argon2 pre-hashes any length; the cap only bounds the request

_hasher = PasswordHasher()


class PasswordRefused(IdentityError):
    """A password that may not be set (too short, the login itself, …); says what to change."""


def check_strength(password: str, *, username: str) -> None:
    """Refuse what a guesser tries first. Raises ``PasswordRefused`` naming the rule."""
    if len(password) < MIN_LENGTH:
        raise PasswordRefused(
            f"a password has at least {MIN_LENGTH} characters", code="password_short", field="password", n=MIN_LENGTH
        )
    if len(password) > MAX_LENGTH:
        raise PasswordRefused(
            f"a password has at most {MAX_LENGTH} characters", code="password_long", field="password", n=MAX_LENGTH
        )
    if password.strip() != password:
        raise PasswordRefused(
            "a password does not start or end with a space (a copy-and-paste slip)",
            code="password_spaces",
            field="password",
        )
    if username.lower() == password.lower() or (len(username) >= 4 and username.lower() in password.lower()):
        raise PasswordRefused("a password does not contain the login name", code="password_has_login", field="password")
    if len(set(password)) < 4:
        raise PasswordRefused(
            "a password has at least 4 different characters", code="password_few_characters", field="password"
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    """Whether ``password`` is the one hashed; a malformed stored hash matches nothing."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _stand_in_hash() -> str:
    return _hasher.hash("a stand-in, so that an unknown login costs as long as a known one")


def set_password(
    session: Session, user: User, password: str, *, actor: str = "cli", now: datetime | None = None
) -> int:
    """Set ``user``'s password after checking it; every open browser session of the user ends
    (whoever knew the old password is logged out). Returns how many sessions ended.

    Raises ``PasswordRefused`` for a weak password or a service account."""
    if user.is_service:
        raise PasswordRefused(
            f"{user.username!r} is a service account: it authenticates with a token (`yunying token create`)",
            code="password_service_account",
        )
    check_strength(password, username=user.username)
    now = now or utcnow()
    user.password_hash = hash_password(password)
    user.password_changed_at = now
    ended = end_sessions(session, user.id, now=now)
    append_change(session, events.USER_PASSWORD_SET, actor=actor, user=user.username, sessions_ended=ended)
    return ended


@dataclass(frozen=True)
class LoginCandidate:
    """What a login name's password is checked against, read in one short transaction so that
    the ~50 ms of argon2 holds no database lock (SQLite's write lock is taken up front)."""

    user_id: int
    password_hash: str
    usable: bool  # active and a person: a right password of anyone else still opens nothing


def login_candidate(session: Session, login: str) -> LoginCandidate | None:
    row = session.execute(
        select(User.id, User.password_hash, User.active, User.is_service).where(User.username == login)
    ).first()
    if row is None or row.password_hash is None:
        return None
    return LoginCandidate(row.id, row.password_hash, bool(row.active) and not row.is_service)


def password_accepted(candidate: LoginCandidate | None, password: str) -> bool:
    """Whether the login may go on: ``False`` for an unknown login, a wrong password, a user
    without a password, a service account or a deactivated user — all alike, and in about the
    same time (an unknown login is checked against a stand-in hash), so the answer tells a
    guesser nothing about which logins exist."""
    if candidate is None:
        password_matches(_stand_in_hash(), password)
        return False
    return password_matches(candidate.password_hash, password) and candidate.usable


def rehash_if_outdated(user: User, password: str) -> None:
    """After a good login: redo a hash made under older argon2 parameters."""
    if user.password_hash is not None and _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
