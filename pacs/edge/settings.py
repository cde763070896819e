"""The edge box's settings: ``YUNYING_EDGE_*`` environment variables and ``.env``, one Settings
for this deployable (STYLE.md). The centre's ``Settings`` it runs its receiver with is derived
from these (``receiver_settings``), never read from the centre's ``YUNYING_*`` variables: a
clinic PC may well carry both."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pacs.identity.addresses import parse_allowed
from pacs.settings import Settings, StorageBackend


class Transport(StrEnum):
    DICOM = "dicom"  # C-STORE to the centre's receiver (TLS when centre_tls)
    STOW = "stow"  # HTTPS STOW-RS to the centre's web port with the site token


class TransitCompression(StrEnum):
    NONE = "none"  # send the stored bytes
    JPEG_LS = "jpeg-ls"  # JPEG-LS Lossless copies, checked to decode to the stored bytes (pacs/edge/compression.py)


class EdgeSettings(BaseSettings):
    """Everything ``yunying edge`` needs. Raises ``ValueError`` (pydantic ``ValidationError``)
    naming the variable to fix."""

    model_config = SettingsConfigDict(env_prefix="YUNYING_EDGE_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path("var-edge"), description="The edge's index, objects and reports live here.")
    site_name: str = "clinic"  # how the local index names this clinic

    # The clinic side: the modalities that may send here, as "AE_TITLE@address-or-network".
    ae_title: str = "YUNYING_EDGE"
    dicom_host: str = "0.0.0.0"
    dicom_port: int = Field(default=11112, ge=0, le=65535)
    modalities: list[str] = Field(default_factory=list)
    # Quiet period at the edge: a study that got no instance for this long is complete as far
    # as the modality is concerned, and its manifest is sent to the centre.
    stability_seconds: float = Field(default=30.0, gt=0)
    stability_poll_s: float = Field(default=1.0, gt=0)

    # The centre.
    transport: Transport = Transport.DICOM
    centre_host: str = "127.0.0.1"
    centre_port: int = Field(default=11112, ge=1, le=65535)
    centre_ae_title: str = "YUNYING"
    calling_ae_title: str = ""  # the AE the centre knows this edge by; default: ae_title
    centre_tls: bool = False  # PS3.15 B.1: needs pki_dir/ca.pem and pki_dir/<calling AE>.pem/.key
    pki_dir: Path | None = None  # default home/pki
    centre_url: str = "http://127.0.0.1:8000"  # manifests, STOW-RS and reports go here
    site_token: str = ""  # a site service account's bearer token (`yunying token create --service …`)
    http_timeout_s: float = Field(default=30.0, gt=0)

    # The link. Several transfers at once hide the round trip each instance waits for its answer.
    associations: int = Field(default=2, ge=1, le=8)
    bandwidth_kbps: int = Field(default=0, ge=0)  # cap on what the edge sends; 0: no cap
    connect_timeout_s: float = Field(default=10.0, gt=0)
    dimse_timeout_s: float = Field(default=60.0, gt=0)
    retry_initial_s: float = Field(default=2.0, gt=0)
    retry_max_s: float = Field(default=300.0, gt=0)
    retry_jitter: float = Field(default=0.5, ge=0, le=1)  # ± this fraction of each delay, drawn anew
    idle_release_s: float = Field(default=10.0, gt=0)  # an association idle this long is released
    max_pdu: int = 262_144
    # Lossless compression in transit, off by default: it trades edge CPU (~50 ms a 256² slice,
    # ~100 ms a 512² one) for a third of the bytes on the line; the centre accepting it is asked
    # for each association, and what cannot be compressed exactly goes as stored.
    transit_compression: TransitCompression = TransitCompression.NONE

    # Reports coming back, and the local status page.
    reports_poll_s: float = Field(default=60.0, gt=0)
    status_host: str = "127.0.0.1"
    status_port: int = Field(default=8088, ge=0, le=65535)  # 0: no page

    # Disk: a study acknowledged by the centre is deleted locally this long after.
    retention_days: float = Field(default=7.0, ge=0)
    prune_interval_s: float = Field(default=3600.0, gt=0)

    log_level: str = "INFO"
    log_json: bool = False

    @model_validator(mode="after")
    def _check(self) -> Self:
        for entry in self.modalities:
            title, _, address = entry.partition("@")
            if not title or not address:
                raise ValueError(
                    f"YUNYING_EDGE_MODALITIES entry {entry!r} is not AE_TITLE@address (e.g. CT1@10.2.0.15)"
                )
            parse_allowed(address)
        if self.transport is Transport.STOW and not self.site_token:
            raise ValueError("YUNYING_EDGE_TRANSPORT=stow needs YUNYING_EDGE_SITE_TOKEN (a site service token)")
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("YUNYING_EDGE_RETRY_MAX_S must be at least YUNYING_EDGE_RETRY_INITIAL_S")
        return self

    @property
    def calling_ae(self) -> str:
        return self.calling_ae_title or self.ae_title

    @property
    def pki_path(self) -> Path:
        return (self.pki_dir or self.home / "pki").resolve()

    @property
    def reports_path(self) -> Path:
        return (self.home / "reports").resolve()

    def allowed_modalities(self) -> list[tuple[str, str]]:
        return [(title.strip(), address.strip()) for title, _, address in (e.partition("@") for e in self.modalities)]

    def receiver_settings(self) -> Settings:
        """The centre's receiver settings for the edge's own receiver: the embedded shape (SQLite
        and a folder under ``home``) — built without reading the centre's ``YUNYING_*`` variables."""
        return Settings.model_construct(
            **{
                **Settings.model_construct().model_dump(),
                "home": self.home,
                "database_url": "",
                "storage_backend": StorageBackend.FOLDER,
                "storage_path": None,
                "dicom_host": self.dicom_host,
                "dicom_port": self.dicom_port,
                "dicom_tls_port": 0,
                "ae_title": self.ae_title,
                "stability_seconds": self.stability_seconds,
                "stability_poll_s": self.stability_poll_s,
                "log_level": self.log_level,
                "log_json": self.log_json,
                "max_associations": 16,
                "ae_cache_s": 5.0,
            }
        )
