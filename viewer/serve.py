"""The embedded shape in one process: DICOM receiver, web, the AI pre-screen worker, the reading
sweeper and the delivery worker."""

from __future__ import annotations

import threading
from collections.abc import Callable

import uvicorn

from ai_models.registry import Registry
from ai_models.settings import AISettings
from ai_models.worker import AiWorker
from pacs.audit_chain import AuditSealer
from pacs.receiving import Receiving
from pacs.service import Services, settle_heap
from pacs.settings import Mode
from reading.delivery import DeliveryWorker
from reading.settings import ReadingSettings
from reading.worklist.sweeper import ReadingSweeper
from viewer.app import create_app


def web_server(services: Services, reading: ReadingSettings) -> uvicorn.Server:
    """The web app under uvicorn: HTTPS when YUNYING_HTTP_TLS_CERT / _KEY are set."""
    settings = services.settings
    config = uvicorn.Config(
        create_app(services, reading),
        host=settings.http_host,
        port=settings.http_port,
        log_level="warning",
        lifespan="off",
        proxy_headers=True,
        forwarded_allow_ips=settings.http_trusted_proxies,
        ssl_certfile=str(settings.http_tls_cert) if settings.http_tls_cert else None,
        ssl_keyfile=str(settings.http_tls_key) if settings.http_tls_key else None,
        ssl_ciphers="ECDHE+AESGCM:ECDHE+CHACHA20",
    )
    return uvicorn.Server(config)


class EmbeddedService:
    """Everything ``yunying serve`` runs; ``start()`` returns when all of it is listening."""

    def __init__(
        self, services: Services, reading: ReadingSettings | None = None, ai: AISettings | None = None
    ) -> None:
        self.services = services
        settings = services.settings
        self.reading = reading or ReadingSettings()
        self.ai = ai or AISettings()
        self.receiving = Receiving(services)
        self.ai_worker = (
            AiWorker(services, self.ai, Registry.from_file(self.ai.registry)) if self.ai.in_service else None
        )
        self.sweeper = ReadingSweeper(services.sessions, self.reading, demo=settings.mode is Mode.DEMO)
        self.delivery = DeliveryWorker(services.sessions, self.reading)
        self.sealer = AuditSealer(services.sessions, settings)
        self.web = web_server(services, self.reading)
        self._web_thread = threading.Thread(target=self.web.run, name="web", daemon=True)

    def start(self) -> None:
        self.receiving.start()
        if self.ai_worker is not None:
            self.ai_worker.start()
        self.sweeper.start()
        self.delivery.start()
        self.sealer.start()
        self._web_thread.start()
        while not self.web.started and self._web_thread.is_alive():
            threading.Event().wait(0.05)
        if not self.web.started:
            raise RuntimeError(
                f"the web server could not start on {self.services.settings.http_host}:"
                f"{self.services.settings.http_port} (port in use? set YUNYING_HTTP_PORT)"
            )
        settle_heap()

    def stop(self) -> None:
        self.web.should_exit = True
        self._web_thread.join(timeout=5)
        self.delivery.stop()
        self.sweeper.stop()
        self.services.audit.flush()
        self.sealer.stop()  # seals what the last requests recorded
        if self.ai_worker is not None:
            self.ai_worker.stop()
        self.receiving.stop()


def run_until_interrupted(service: EmbeddedService, on_started: Callable[[], None] | None = None) -> None:
    service.start()
    try:
        if on_started:
            on_started()
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
