"""The one place Yunying's settings are read: ``YUNYING_*`` environment variables and ``.env``."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

INSECURE_SECRET = "changeme"
# The Issuer of Patient ID (0010,0021) that marks a PRC resident identity card number (GB
# 11643-1999) by default. A literal, not an OID: clinics type it into their RIS/modality
# configuration, and "the ID card" is what their staff call it.
DEFAULT_NATIONAL_ID_ISSUER = "CN-RIC"


class Mode(StrEnum):
    LOCAL = "local"
    DEMO = "demo"
    PRODUCTION = "production"


class StorageBackend(StrEnum):
    FOLDER = "folder"
    S3 = "s3"


class Settings(BaseSettings):
    """Everything a Yunying process needs to know, read once at start-up and passed down.

    Raises ``ValueError`` (pydantic ``ValidationError``) when a production configuration keeps
    an insecure default.
    """

    model_config = SettingsConfigDict(env_prefix="YUNYING_", env_file=".env", extra="ignore")

    mode: Mode = Mode.LOCAL
    home: Path = Field(default=Path("var"), description="Everything of the embedded default lives here.")
    secret_key: str = INSECURE_SECRET

    # Index. Empty means the embedded SQLite file under ``home``.
    database_url: str = ""
    database_connect_timeout_s: float = 2.0

    # Object storage.
    storage_backend: StorageBackend = StorageBackend.FOLDER
    storage_path: Path | None = None  # folder backend; default ``home/objects``
    s3_endpoint: str = "127.0.0.1:9000"
    s3_access_key: str = "minioadmin"
    s3_secret_key: str = "minioadmin"
    s3_bucket: str = "yunying"
    s3_region: str = "us-east-1"
    s3_secure: bool = False
    # FIELD-NOTES: the minio SDK waits 300 s to connect and to read by default, holding a
    # C-STORE for minutes when the store stalls.
    s3_connect_timeout_s: float = 2.0
    s3_read_timeout_s: float = 15.0
    s3_retries: int = 1

    # DICOM receiver.
    dicom_host: str = "0.0.0.0"
    dicom_port: int = 11112
    # DICOM over TLS (PS3.15 B.1, mutual certificates from the consortium CA of `yunying pki`):
    # 0 keeps it off; 2762 is the registered port. The PKI folder holds ca.pem, crl.pem and the
    # receiver's server.pem / server.key.
    dicom_tls_port: int = Field(default=0, ge=0, le=65535)
    dicom_tls_host: str = "0.0.0.0"
    # Production refuses plain DICOM beyond loopback unless this says it is deliberate (a
    # private clinic network whose modalities cannot speak TLS; the edge box is the better way).
    dicom_plain_allowed: bool = False
    # Load balancers in TCP mode that prefix connections with PROXY v2 (HAProxy send-proxy-v2):
    # addresses or networks, e.g. '["10.0.0.5"]'. Connections from them must carry the header;
    # the client's real address then drives the allow-list and the per-address cap.
    dicom_proxy_from: list[str] = Field(default_factory=list)
    pki_dir: Path | None = None  # default ``home/pki``
    tls_handshake_timeout_s: float = Field(default=10.0, gt=0)
    ae_title: str = "YUNYING"
    max_pdu: int = 1_048_576  # FIELD-NOTES: 16 KB costs about a fifth of the throughput
    acse_timeout_s: float = 10.0
    dimse_timeout_s: float = 30.0
    network_timeout_s: float = 30.0
    socket_idle_timeout_s: float = 30.0  # no byte for this long on an accepted socket: close it
    pdu_deadline_s: float = 60.0  # a whole PDU must arrive within this
    max_associations: int = 32
    max_associations_per_address: int = 8
    max_instances_per_association: int = 20_000
    max_bytes_per_association: int = 20 * 1024**3
    # The AE allow-list is re-read at most this often; during a database outage the last copy
    # keeps known modalities connected (they then get 0xA700 per instance, and retry).
    ae_cache_s: float = 5.0
    partial_file_max_age_s: float = 3600.0  # temp files of aborted associations older than this are swept

    # An object in the store that no index row references (a crash between store and index)
    # is removed once it is this old; younger ones may belong to an ingest still in flight.
    orphan_grace_s: float = 600.0
    # How often the receiver (the one process of `--processes N` that sweeps) looks for objects
    # no index row references — left when a store answered late and the ingest could not delete
    # what it wrote — and deletes those older than the grace. Also at every start. Each sweep
    # lists the whole store (docs/operations.md): daily by default.
    orphan_sweep_interval_s: float = Field(default=86400.0, gt=0)

    # The Issuer of Patient ID (0010,0021) under which a site sends the resident identity card
    # number, as Patient ID or in Other Patient IDs Sequence (docs/conformance.md, "Patient
    # identity across sites"): what matches one person's studies across the consortium's sites.
    national_id_issuer: str = Field(default=DEFAULT_NATIONAL_ID_ISSUER, min_length=1, max_length=64)

    # Study stability: no new instance for this long → stable, AI job queued.
    stability_seconds: float = 60.0
    stability_poll_s: float = 1.0
    # A study of a site that sends through a clinic edge also waits for the edge's manifest
    # (pacs/completeness.py), at most this long: then it turns stable flagged incomplete.
    manifest_wait_s: float = Field(default=86400.0, gt=0)

    log_level: str = "INFO"
    log_json: bool = False

    # Web.
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Origins allowed to call the API from a browser (an OHIF build served elsewhere), e.g.
    # YUNYING_CORS_ORIGINS='["https://ohif.example.cn"]'. Empty: no CORS headers at all.
    cors_origins: list[str] = Field(default_factory=list)
    # HTTPS served by Yunying itself (`yunying web`, `yunying serve`); behind a reverse proxy
    # that terminates TLS, leave these empty and bind HTTP to the proxy's network only.
    http_tls_cert: Path | None = None
    http_tls_key: Path | None = None
    # Reverse proxies (addresses or networks, e.g. '["172.20.0.0/16"]') whose X-Forwarded-For
    # and X-Forwarded-Proto are believed: the client's real address then goes into the audit
    # and drives the failed-login throttle. Empty: the headers are ignored, whoever sends them
    # (else any client could pick the address it is audited and throttled under).
    http_proxy_from: list[str] = Field(default_factory=list)
    # STOW-RS: a request's whole body is spooled to ``incoming_path`` (part by part, never held
    # in memory) before any part is ingested, so these bound the disk one request can hold and
    # are answered 413 when passed. 2 GiB holds a thin-slice CT of ~4,000 uncompressed 512²
    # slices; 5,000 parts is above any single study we expect from a clinic.
    stow_max_bytes: int = Field(default=2 * 1024**3, gt=0)
    stow_max_parts: int = Field(default=5_000, gt=0)

    # The access audit's hash chain (pacs/audit_chain.py). The chain is keyed (HMAC-SHA256) so
    # that whoever can write the database cannot re-seal what he altered: the key is
    # YUNYING_AUDIT_KEY, or derived from YUNYING_SECRET_KEY when empty. Keep it: records sealed
    # under another key no longer verify. A background sealer chains new records every
    # ``audit_seal_interval_s``; retention deletes sealed records older than
    # ``audit_retention_days`` (0 keeps them forever) — 15 years by default, the longest that
    # Chinese rules ask of a medical record.
    # Prometheus: /metrics on the web port answers loopback callers, or anyone with this bearer
    # token when set; a receiver or worker process without a web port serves its own counters
    # on YUNYING_METRICS_PORT (0: none; ``--processes N`` children use port, port+1, …).
    # Failed bearer tokens: after this many from one address within the window, the address is
    # answered 429 until the window has passed (pacs/identity/throttle.py); each failure audited.
    auth_failure_limit: int = Field(default=10, ge=1)
    auth_failure_window_s: float = Field(default=300.0, gt=0)

    # Browser sessions (pacs/identity/sessions.py, viewer/session_api.py): a session ends after
    # this long without a request, and in any case this long after its login.
    session_idle_timeout_s: float = Field(default=1800.0, gt=0)
    session_lifetime_s: float = Field(default=12 * 3600.0, gt=0)
    # The session cookie's Secure flag (sent over HTTPS only). Unset: on in production, off
    # elsewhere (the embedded default serves plain HTTP on loopback). Production refuses false.
    session_cookie_secure: bool | None = None
    # Failed logins (POST /api/session): after this many for one login name, or
    # ``login_failure_limit_per_address`` from one address (a clinic's staff share one NAT
    # address), within the window, logins are answered 429 until the oldest failure has left
    # the window. In-process, like auth_failure_limit.
    login_failure_limit: int = Field(default=5, ge=1)
    login_failure_limit_per_address: int = Field(default=20, ge=1)
    login_failure_window_s: float = Field(default=900.0, gt=0)

    metrics_token: str = ""
    metrics_port: int = Field(default=0, ge=0, le=65535)

    audit_key: str = ""
    audit_seal_interval_s: float = Field(default=10.0, gt=0)
    audit_retention_days: int = Field(default=15 * 365 + 4, ge=0)

    @field_validator("dicom_proxy_from", "http_proxy_from")
    @classmethod
    def _addresses_or_networks(cls, entries: list[str]) -> list[str]:
        """A proxy list names addresses or networks; a typo would otherwise trust nothing (uvicorn
        keeps what it cannot parse as a literal) or fail only at the first connection."""
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network (10.0.0.5, 172.20.0.0/16)") from None
        return entries

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Self:
        if self.mode is Mode.PRODUCTION:
            problems = []
            if self.secret_key == INSECURE_SECRET or len(self.secret_key) < 32:
                problems.append("set YUNYING_SECRET_KEY to a random string of 32+ characters")
            if not self.database_url or self.database_url.startswith("sqlite"):
                problems.append("set YUNYING_DATABASE_URL to a PostgreSQL URL")
            if self.audit_key and len(self.audit_key) < 32:
                problems.append("set YUNYING_AUDIT_KEY to 32+ characters, or leave it empty to derive it")
            if not self.dicom_plain_allowed and not _loopback(self.dicom_host):
                problems.append(
                    "plain DICOM listens beyond loopback: bind it to 127.0.0.1 (YUNYING_DICOM_HOST) and serve sites "
                    "over TLS (YUNYING_DICOM_TLS_PORT, `yunying pki`), or set YUNYING_DICOM_PLAIN_ALLOWED=true if "
                    "that is deliberate"
                )
            if any(ipaddress.ip_network(e, strict=False).prefixlen == 0 for e in self.http_proxy_from):
                problems.append("YUNYING_HTTP_PROXY_FROM trusts every address: name the reverse proxies' network")
            if "*" in self.cors_origins:
                problems.append("YUNYING_CORS_ORIGINS holds '*': name the origins that may call the API")
            if self.log_level.upper() == "DEBUG":
                problems.append("YUNYING_LOG_LEVEL=DEBUG logs request details: use INFO in production")
            if bool(self.http_tls_cert) != bool(self.http_tls_key):
                problems.append("set both YUNYING_HTTP_TLS_CERT and YUNYING_HTTP_TLS_KEY, or neither")
            if self.session_cookie_secure is False:
                problems.append(
                    "YUNYING_SESSION_COOKIE_SECURE=false would send the session cookie over plain HTTP: unset it "
                    "and serve the web over HTTPS (a TLS-terminating proxy, or YUNYING_HTTP_TLS_CERT/KEY)"
                )
            if self.storage_backend is StorageBackend.S3 and self.s3_secret_key == "minioadmin":
                problems.append("set YUNYING_S3_ACCESS_KEY / YUNYING_S3_SECRET_KEY (not minioadmin)")
            if problems:
                raise ValueError("refusing to start in production mode: " + "; ".join(problems))
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'yunying.db').resolve()}"

    @property
    def cookie_secure(self) -> bool:
        return self.mode is Mode.PRODUCTION if self.session_cookie_secure is None else self.session_cookie_secure

    @property
    def proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(entry, strict=False) for entry in self.dicom_proxy_from]

    @property
    def pki_path(self) -> Path:
        return (self.pki_dir or self.home / "pki").resolve()

    @property
    def objects_path(self) -> Path:
        return (self.storage_path or self.home / "objects").resolve()

    @property
    def incoming_path(self) -> Path:
        """Where DICOM data is written while it arrives: beside the folder store, so a finished
        file is hard-linked into place rather than copied."""
        if self.storage_backend is StorageBackend.FOLDER:
            return self.objects_path / ".incoming"
        return (self.home / "incoming").resolve()


def _loopback(host: str) -> bool:
    """127.0.0.1, ::1 or localhost; 0.0.0.0 (every interface) is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
