"""The embedded shape in one process: DICOM receiver, web, and background workers."""

from __future__ import annotations

import threading
from collections.abc import Callable

import uvicorn

from pacs.receiving import Receiving
from pacs.service import Services, settle_heap
from viewer.app import create_app


class EmbeddedService:
    """Everything ``yunying serve`` runs; ``start()`` returns when all of it is listening."""

    def __init__(self, services: Services) -> None:
        self.services = services
        settings = services.settings
        self.receiving = Receiving(services)
        config = uvicorn.Config(
            create_app(services), host=settings.http_host, port=settings.http_port, log_level="warning", lifespan="off"
        )
        self.web = uvicorn.Server(config)
        self._web_thread = threading.Thread(target=self.web.run, name="web", daemon=True)

    def start(self) -> None:
        self.receiving.start()
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
