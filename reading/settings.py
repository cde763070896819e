"""Settings of the reading workflow (``YUNYING_READING_*`` and friends), read once at start-up."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ReadingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="YUNYING_", env_file=".env", extra="ignore")

    # A stable study goes on to reading when no AI result came within this (routing owns the AI
    # timeout, so a study reaches a reader whether or not any AI worker runs).
    reading_ai_timeout_s: float = Field(default=120.0, gt=0)
    # A claim lasts this long unless the viewer renews it; then the task returns to the queue.
    reading_lease_s: float = Field(default=600.0, gt=0)
    reading_sweep_poll_s: float = Field(default=2.0, gt=0)
    # A county task still queued past its deadline goes to the provincial tier.
    reading_auto_escalate: bool = True
    # Give a new task straight to the on-duty reader (of its tier) who may read it and holds the fewest tasks.
    reading_auto_assign: bool = False
    # A prior study of the task's patient at a site the reader does not read for opens to him as
    # a break-glass ("prior for task N") for this long (reading/api/priors.py).
    prior_access_hours: int = Field(default=4, gt=0, le=24)
    # 危急值: the site must acknowledge a critical result within this, else the duty officer is alerted.
    critical_ack_minutes: int = Field(default=15, gt=0)
    # Adapters told of every critical result besides the site portal, e.g. '["acme.sms:Notifier"]'.
    critical_notifiers: list[str] = Field(default_factory=list)
    # The reading centre's name on printed reports; empty: the consortium's name + 影像诊断中心.
    centre_name: str = ""
    # Report delivery by C-STORE to a site's return destination.
    delivery_ae_title: str = "YUNYING"
    delivery_poll_s: float = Field(default=2.0, gt=0)
    delivery_retry_s: float = Field(default=30.0, gt=0)  # first retry; doubles per attempt
    delivery_retry_max_s: float = Field(default=3600.0, gt=0)  # never wait longer than this between tries
    delivery_lease_s: float = Field(default=120.0, gt=0)
    delivery_timeout_s: float = Field(default=15.0, gt=0)  # connect / response timeout per association
    # Peer review (RADPEER): the share of each reader's signed reports of a month drawn for a
    # blinded second reading (at least one per reader who signed any), `yunying qa peer sample`.
    peer_review_share: float = Field(default=0.03, gt=0, le=1)
