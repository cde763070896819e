"""A reader's named worklist views: the filters of the worklist page saved under a name, per
user, in the index (so they follow him to another workstation). Nobody sees another's views:
every function takes the owner and finds only his."""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pacs.index.types import utcnow
from reading.errors import NotFound, Refused
from reading.models import SavedView

MAX_VIEWS: Final = 30  # a list to pick from, not a store: more is a mistake or a script
MAX_NAME: Final = 60


def views_of(session: Session, user_id: int) -> list[SavedView]:
    """The user's views, by name."""
    return list(session.scalars(select(SavedView).where(SavedView.user_id == user_id).order_by(SavedView.name)))


def save_view(session: Session, user_id: int, name: str, filters: dict[str, Any]) -> tuple[SavedView, bool]:
    """Save ``filters`` under ``name`` (replacing the user's view of that name); returns the
    view and whether it is new. Raises ``Refused`` for an empty or long name, or a user who has
    ``MAX_VIEWS`` already."""
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise Refused(f"a view's name is 1–{MAX_NAME} characters", code="view_name_invalid", field="name", n=MAX_NAME)
    view = session.scalar(select(SavedView).where(SavedView.user_id == user_id, SavedView.name == name))
    if view is not None:
        view.filters = filters
        view.updated_at = utcnow()
        return view, False
    count = session.scalar(select(func.count()).select_from(SavedView).where(SavedView.user_id == user_id)) or 0
    if count >= MAX_VIEWS:
        raise Refused(f"you have {MAX_VIEWS} saved views already: delete one first", code="views_too_many", n=MAX_VIEWS)
    view = SavedView(user_id=user_id, name=name, filters=filters)
    session.add(view)
    session.flush()
    return view, True


def delete_view(session: Session, user_id: int, view_id: int) -> None:
    """Delete one of the user's views. Raises ``NotFound`` for another's (he may not know it exists)."""
    view = session.get(SavedView, view_id)
    if view is None or view.user_id != user_id:
        raise NotFound(f"you have no saved view {view_id}")
    session.delete(view)
