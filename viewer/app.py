"""The ASGI application: health endpoints and the routers that live beside their domain
(DESIGN.md): ``/dicomweb`` from pacs.dicomweb (QIDO, WADO and STOW-RS) and ``/api`` from reading.api
(worklist, reports, the site's view, administration), and the browser's login ``/api/session``
(viewer/session_api.py)."""

from __future__ import annotations

import hmac
import ipaddress
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from sqlalchemy import text
from sqlalchemy.exc import DataError
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware

from pacs.dicomweb.manifests import router as manifest_router
from pacs.dicomweb.routes import router as qido_router
from pacs.dicomweb.stow import router as stow_router
from pacs.dicomweb.wado import router as wado_router
from pacs.metrics import IndexCollector, exposition, pacs_figures
from pacs.service import Services
from pacs.storage import StoreUnavailable
from reading.api import router as reading_router
from reading.metrics import reading_figures
from reading.settings import ReadingSettings
from viewer.frontend import mount_frontend
from viewer.session_api import router as session_router


class ServerTiming:
    """Adds ``Server-Timing: app;dur=<ms>`` to every answer: the time from the request's arrival
    to the start of the answer inside this process (for a streamed answer, to its first byte),
    so a slow answer can be told apart from a slow network or client (bench/dicomweb.py)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()

        async def send_timed(message: Any) -> None:
            if message["type"] == "http.response.start":
                duration = f"app;dur={(time.perf_counter() - began) * 1000:.1f}".encode()
                message = {**message, "headers": [*message.get("headers", []), (b"server-timing", duration)]}
            await send(message)

        await self.app(scope, receive, send_timed)


def create_app(services: Services, reading: ReadingSettings | None = None) -> FastAPI:
    app = FastAPI(title="Yunying", version="0.1.0", docs_url=None, redoc_url=None)
    app.state.services = services
    app.state.reading_settings = reading or ReadingSettings()
    # JSON (DICOM JSON metadata of a 300-slice series is ~1 MB), CSV and pages go gzip-compressed
    # to a browser that accepts it — a township's 4 Mbit/s line; pixels and files do not (frames
    # and instances are multipart/related, compressed by their transfer syntax or not at all).
    app.add_middleware(
        GZipMiddleware,
        minimum_size=1400,
        compresslevel=6,
        exclude_content_types=(
            *DEFAULT_EXCLUDED_CONTENT_TYPES,
            "multipart/*",
            "image/*",
            "application/dicom",
            "application/octet-stream",
            "application/pdf",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
    )
    app.add_middleware(ServerTiming)
    if services.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=services.settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "OPTIONS"],
            allow_headers=["Authorization", "Accept", "Content-Type"],
            expose_headers=["Warning", "Content-Location"],
            max_age=600,
        )

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def out_of_range(request: Request, exc: Exception) -> JSONResponse:
        """A number the database cannot hold (an id of 2⁶³, say) is the caller's error, not ours."""
        return JSONResponse({"detail": "a number in the request is out of range"}, status_code=422)

    app.include_router(qido_router)
    app.include_router(wado_router)
    app.include_router(stow_router)
    app.include_router(manifest_router)
    app.include_router(reading_router)
    app.include_router(session_router)
    mount_frontend(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> Any:
        """The index and the object store answer; no patient data is returned."""
        checks: dict[str, str] = {}
        try:
            with services.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            checks["index"] = "ok"
        except Exception as exc:  # noqa: BLE001 — any failure means not ready
            checks["index"] = f"unavailable: {type(exc).__name__}"
        try:
            services.store.exists("readyz-probe")
            checks["store"] = "ok"
        except StoreUnavailable as exc:
            checks["store"] = f"unavailable: {exc}"
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse({"status": "ok" if ready else "unavailable", **checks}, status_code=200 if ready else 503)

    index_figures = CollectorRegistry(auto_describe=True)
    index_figures.register(IndexCollector(services.sessions, [pacs_figures, reading_figures]))
    metrics_token = services.settings.metrics_token

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Prometheus text format: this process's counters and the index figures. With
        YUNYING_METRICS_TOKEN set it needs that bearer token; without, only loopback callers."""
        if metrics_token:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {metrics_token}".encode()):
                return JSONResponse({"detail": "send Authorization: Bearer $YUNYING_METRICS_TOKEN"}, status_code=401)
        elif not (request.client and ipaddress.ip_address(request.client.host).is_loopback):
            return JSONResponse(
                {"detail": "metrics are served to loopback only; set YUNYING_METRICS_TOKEN to scrape from afar"},
                status_code=403,
            )
        return Response(exposition(index_figures), media_type=CONTENT_TYPE_LATEST)

    return app
