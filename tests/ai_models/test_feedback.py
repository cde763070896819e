"""Readers' agree/disagree per finding, and ``yunying ai monitor``'s agreement per model and site."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from ai_models import events
from ai_models.feedback import FeedbackRefused, agreement, record_feedback
from ai_models.records import AiFinding
from pacs.identity.users import add_user
from pacs.index.db import transaction
from tests.ai_models.conftest import AiWorld
from viewer.cli import app


def test_feedback_is_recorded_replaced_and_summed_per_model_and_site(
    make_ai_world: Callable[..., AiWorld], monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_ai_world()
    uid = world.ingest()
    world.stable()
    assert world.worker().run_once()
    with transaction(world.services.sessions) as session:
        li = add_user(session, username="li", role="reader", consortium="Dongtai").id
        wang = add_user(session, username="wang", role="reader", consortium="Dongtai").id
        first, second = session.scalars(select(AiFinding.id).where(AiFinding.study_uid == uid).limit(2)).all()
        record_feedback(session, first, li, agree=False, comment="其实有层面缺失")
        record_feedback(session, first, li, agree=True)  # changed his mind: replaces
        record_feedback(session, first, wang, agree=True)
        record_feedback(session, second, wang, agree=False)
        with pytest.raises(FeedbackRefused, match="no AI finding 999"):
            record_feedback(session, 999, li, agree=True)
        [row] = agreement(session)
    assert (row.model, row.site, row.findings, row.reviewed, row.opinions, row.agreed) == (
        "image-qc",
        "Fudong",
        7,
        2,
        3,
        2,
    )
    assert len(world.changes(events.AI_FEEDBACK, uid)) == 4

    monkeypatch.setenv("YUNYING_HOME", str(world.services.settings.home))
    shown = CliRunner().invoke(app, ["ai", "monitor"])
    assert shown.exit_code == 0, shown.output
    assert "image-qc" in shown.output and "Fudong" in shown.output and "67%" in shown.output
