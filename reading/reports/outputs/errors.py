"""The one error every report output raises when a document cannot be turned into it."""

from __future__ import annotations


class ReportOutputError(Exception):
    """A report document that cannot be rendered or encoded as asked; the message names the fix."""
