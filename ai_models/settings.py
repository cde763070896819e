"""Settings of the AI pre-screen worker: ``YUNYING_AI_*`` environment variables and ``.env``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AISettings(BaseSettings):
    """Read once at start-up and passed down. Timeouts are settings so tests run them short."""

    model_config = SettingsConfigDict(env_prefix="YUNYING_AI_", env_file=".env", extra="ignore")

    # FIELD-NOTES: the machine has 2 cores shared with the receiver and the web; a model that
    # takes them all slows every C-STORE.
    threads: int = Field(default=2, ge=1)
    # A model that runs longer is killed (it runs in a child process) and recorded ai.failed.
    model_timeout_s: float = Field(default=60.0, gt=0)
    # The worker holds a job this long, renewed after each model: longer than one model's limit.
    lease_s: float = Field(default=300.0, gt=0)
    poll_s: float = Field(default=1.0, gt=0)
    retry_backoff_s: float = Field(default=5.0, ge=0)
    # The registry file; empty: the one shipped in ai_models/registry.json.
    registry: Path | None = None
    # Write the pre-screen SR and heat maps back into the study (as new series).
    dicom_results: bool = True
    # Run the worker inside ``yunying serve`` / ``yunying demo`` (the embedded shape); off when
    # separate ``yunying worker ai`` processes do the work.
    in_service: bool = True
    # Whether an unvalidated model's suggested priority travels to reading at all. Reading
    # applies it only in demo mode (YUNYING_MODE=demo); false keeps a demo queue ordered as a
    # production one would be.
    unvalidated_triage: bool = True
