"""Outcomes the reading core refuses with; only ``reading/api`` maps them to HTTP (one table)."""

from __future__ import annotations


class ReadingError(ValueError):
    """A request the reading workflow cannot carry out; the message names the fix."""


class NotFound(ReadingError):
    """No such task, report, study or reader (or none the caller may know of)."""


class OutOfScope(ReadingError):
    """The caller may not act on this (another site's report, a task outside the reader's tier,
    credentials or sites, someone else's claim)."""


class ReadRefused(OutOfScope):
    """A caller refused a reading task by the one rule of who may read what (``check_may_read``):
    ``unit_of_work`` answers 403 and records the refusal as a denied access (who, which task's
    study and patient, from where)."""

    def __init__(self, message: str, *, task_id: int, study_uid: str, patient_id: str | None, site_id: int) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.study_uid = study_uid
        self.patient_id = patient_id
        self.site_id = site_id


class Conflict(ReadingError):
    """The object changed under the caller: already claimed, already signed, lease lost."""


class Invalid(ReadingError):
    """Bad input: an unknown template field, an empty impression at signing, a bad time."""


class Refused(Invalid):
    """Bad input a page shows beside its field in its user's language: ``code`` names the
    catalogues' ``error.<code>``, filled with ``params`` (reading/api/deps.py ``refused``)."""

    def __init__(self, message: str, *, code: str, field: str | None = None, **params: str | int) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.params = params
