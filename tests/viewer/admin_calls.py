"""What the administration API tests share: an admin's client with his CSRF header, the audit
records of an action, the length of the change log, and the check that bad inputs are refused
with their catalogue code and field while nothing is written."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx
from sqlalchemy import func, select

from pacs.index.db import transaction
from pacs.index.models import AccessRecord, Change
from tests.viewer.conftest import Web

# (method, path, body, code, field); code None: refused by scope (403), not by validation.
Refusal = tuple[str, str, dict[str, Any], str | None, str | None]


def admin_client(web: Web) -> tuple[httpx.Client, dict[str, str]]:
    client, csrf = web.log_in("admin")
    return client, {"X-CSRF-Token": csrf}


def audited(web: Web, action: str) -> list[dict[str, Any]]:
    with transaction(web.world.services.sessions, read_only=True) as session:
        rows = session.scalars(select(AccessRecord).where(AccessRecord.action == action)).all()
        return [{"username": r.username, "role": r.role, "site_id": r.site_id, "detail": r.detail} for r in rows]


def changes(web: Web) -> int:
    with transaction(web.world.services.sessions, read_only=True) as session:
        return int(session.scalar(select(func.count()).select_from(Change)) or 0)


def assert_refused(web: Web, client: httpx.Client, headers: dict[str, str], cases: Iterable[Refusal]) -> None:
    """Each case is answered 422 ``{detail, code, field, params}`` naming its code and field (a
    case without a code: 403), and the change log (so the audit trail) is as long afterwards."""
    before = changes(web)
    for method, path, body, code, field in cases:
        answer = client.request(method, path, headers=headers, json=body)
        if code is None:
            assert answer.status_code == 403, (method, path, body, answer.text)
            continue
        assert answer.status_code == 422, (method, path, body, answer.text)
        refusal = answer.json()
        assert set(refusal) == {"detail", "code", "field", "params"}, (path, body, refusal)
        assert (refusal["code"], refusal["field"]) == (code, field), (path, body, refusal)
        assert isinstance(refusal["detail"], str) and refusal["detail"]
        assert isinstance(refusal["params"], dict)
    assert changes(web) == before, "a refused request wrote something"
