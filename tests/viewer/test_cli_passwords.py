"""``yunying user add --password-stdin``, ``yunying user password`` and ``yunying user
disable|enable`` as an administrator types them: the password never on the command line."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sqlalchemy import select

from pacs.identity.passwords import login_candidate, password_accepted
from pacs.index.db import make_engine, make_sessionmaker, transaction
from pacs.index.models import User
from tests.conftest import VENV_BIN, receiver_env, yunying


def typed(*args: str, env: dict[str, str], stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "yunying"), *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )


def test_passwords_from_the_command_line_tool(tmp_path: Path) -> None:
    env = receiver_env(tmp_path / "var")
    yunying("db", "upgrade", env=env)
    yunying("site", "add", "Fudong", "--tier", "township", "--consortium", "C", env=env)
    added = typed(
        "user",
        "add",
        "zhou",
        "--role",
        "site",
        "--site",
        "Fudong",
        "--password-stdin",
        env=env,
        stdin="CT-room-7-Fudong\n",
    )
    assert added.returncode == 0 and "with a password" in added.stdout, added.stderr
    weak = typed("user", "password", "zhou", "--stdin", env=env, stdin="short\n")
    assert weak.returncode != 0 and "at least 10 characters" in weak.stderr
    service = typed(
        "user",
        "add",
        "ris",
        "--role",
        "site",
        "--site",
        "Fudong",
        "--service",
        "--password-stdin",
        env=env,
        stdin="CT-room-7-Fudong\n",
    )
    assert service.returncode != 0 and "token" in service.stderr
    changed = typed("user", "password", "zhou", "--stdin", env=env, stdin="a-newer-password-9\n")
    assert changed.returncode == 0 and "0 open session(s) ended" in changed.stdout
    assert "0 open session(s) of 'zhou' ended" in yunying("user", "logout", "zhou", env=env).stdout
    assert "is now deactivated" in yunying("user", "disable", "zhou", env=env).stdout
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'yunying.db'}")
    sessions = make_sessionmaker(engine)
    try:
        with transaction(sessions) as session:
            candidate = login_candidate(session, "zhou")
            assert session.scalar(select(User.id).where(User.username == "ris")) is None  # refused: nothing added
        assert candidate is not None and not candidate.usable  # deactivated
        assert not password_accepted(candidate, "a-newer-password-9")
        assert "is now active" in yunying("user", "enable", "zhou", env=env).stdout
        with transaction(sessions) as session:
            candidate = login_candidate(session, "zhou")
        assert password_accepted(candidate, "a-newer-password-9")
        assert not password_accepted(candidate, "CT-room-7-Fudong")
    finally:
        engine.dispose()
