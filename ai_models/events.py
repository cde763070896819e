"""Kinds of change written by ``ai_models`` to the one ``changes`` table (dotted, lowercase).

One change per model and study pre-screen, so the change feed says which model did what."""

from typing import Final

AI_DONE: Final = "ai.done"  # a model ran on the study; payload: model, version, findings, positives
AI_FAILED: Final = "ai.failed"  # a model raised, timed out or could not load; payload: model, reason
AI_SKIPPED: Final = "ai.skipped"  # no model applies, or a model declined the study (NotApplicable)
AI_RESULTS_STORED: Final = "ai.results_stored"  # the pre-screen SR and heat maps joined the study
AI_FEEDBACK: Final = "ai.feedback"  # a reader agreed or disagreed with a finding
