"""What every ``yunying`` command module shares: the consoles, settings and services opened
with errors that name the fix. Its own module so ``pacs.cli`` and ``pacs.identity.cli`` can
both import it at the top."""

from __future__ import annotations

import typer
from pydantic import ValidationError
from rich.console import Console

from pacs.service import Services, build_services
from pacs.settings import Settings
from pacs.storage import StoreUnavailable

console = Console()
err = Console(stderr=True)


def load_settings() -> Settings:
    """Settings from the environment; a bad value stops the command with the fix."""
    try:
        return Settings()
    except ValidationError as exc:
        err.print(f"[red]Configuration error:[/red] {exc.errors()[0]['msg']}")
        raise typer.Exit(2) from None


def open_services(settings: Settings) -> Services:
    try:
        return build_services(settings)
    except StoreUnavailable as exc:
        err.print(f"[red]Object store unavailable:[/red] {exc}\nCheck YUNYING_S3_* settings or that the store runs.")
        raise typer.Exit(3) from None
    except ValueError as exc:  # e.g. an invalid bucket name, from the S3 SDK
        err.print(f"[red]Object store misconfigured:[/red] {exc}\nCheck YUNYING_S3_* settings.")
        raise typer.Exit(2) from None


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]{message}[/red]")
    return typer.Exit(code)


def serve_metrics(settings: Settings, process_index: int = 0) -> None:
    """Serve this process's Prometheus counters on YUNYING_METRICS_PORT (+ index), if set."""
    if not settings.metrics_port:
        return
    from prometheus_client import start_http_server

    port = settings.metrics_port + process_index
    try:
        start_http_server(port, addr=settings.http_host)
    except OSError as exc:
        err.print(f"[red]Cannot serve metrics on {settings.http_host}:{port}:[/red] {exc} (set YUNYING_METRICS_PORT)")
        raise typer.Exit(2) from None
