"""Two refreshes of ``qa_turnaround`` at once on PostgreSQL (the QA page asks for its four
figures together): the second waits for the first and finds nothing left to fold in, instead of
inserting the same rows again and breaking the table's key."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from pacs.index.db import transaction
from pacs.service import Services
from reading.qa.models import QaTurnaround
from reading.qa.store import refresh
from tests.reading.qa_history import build_history, extend_history

pytestmark = pytest.mark.postgres


def test_a_second_refresh_waits_for_the_first_and_folds_in_nothing(make_services: Callable[..., Services]) -> None:
    services = make_services("postgres-s3")
    with transaction(services.sessions) as session:
        history = build_history(session, stop_after=3)
        assert refresh(session) == 3
    with transaction(services.sessions) as session:
        extend_history(session, history, start=4, stop=7)

    answers: list[int | BaseException] = []

    def second() -> None:
        try:
            with transaction(services.sessions) as session:
                answers.append(refresh(session))
        except BaseException as exc:  # the failure is what the test reports
            answers.append(exc)

    first = services.sessions()
    try:
        with first.begin():
            assert refresh(first) == 3  # rows rebuilt, not yet committed
            thread = threading.Thread(target=second)
            thread.start()
            time.sleep(0.5)  # the second is inside refresh now, waiting or (before the fix) blocked on rows
            assert answers == []
        thread.join(timeout=10)
    finally:
        first.close()
    assert answers == [0]
    with transaction(services.sessions, read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(QaTurnaround)) == 7
