"""The ``yunying`` command: the pacs commands plus the ones that assemble the whole service."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ai_models import cli as ai_cli
from pacs import cli as pacs_cli
from pacs.index.db import transaction
from pacs.index.migrate import upgrade
from pacs.logs import configure_logging
from pacs.service import Services
from pacs.settings import Mode
from reading import cli as reading_cli

app = typer.Typer(
    help="Yunying (云影): the regional imaging cloud-diagnosis centre. Settings come from YUNYING_* "
    "environment variables or .env (see README).",
    no_args_is_help=True,
)
pacs_cli.register(app)
reading_cli.register(app)
ai_cli.register(app, reading_cli.worker_app)
console = Console()


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def refuse_demo_passwords(services: Services) -> None:
    """Production refuses to serve logins while a public demo password still opens a session."""
    if services.settings.mode is not Mode.PRODUCTION:
        return
    from viewer.demo import demo_passwords_in_use

    with transaction(services.sessions, read_only=True) as session:
        in_use = demo_passwords_in_use(session)
    if in_use:
        services.close()
        raise pacs_cli.fail(
            f"refusing to start in production mode: {', '.join(in_use)} still log in with the public demo "
            f"password; set new ones (`yunying user password LOGIN`) or deactivate them (`yunying user disable LOGIN`)"
        )


@app.command()
def serve() -> None:
    """Run the embedded shape in one process: DICOM receiver, web and workers, until Ctrl-C."""
    from viewer.serve import EmbeddedService, run_until_interrupted

    settings = pacs_cli.load_settings()
    configure_logging(settings)
    services = pacs_cli.open_services(settings)
    refuse_demo_passwords(services)
    signal.signal(signal.SIGTERM, _raise_interrupt)

    def announce() -> None:
        console.print(
            f"Yunying is running: DICOM {settings.ae_title}@{settings.dicom_host}:{settings.dicom_port}, "
            f"web http://{settings.http_host}:{settings.http_port}/readyz — Ctrl-C stops it."
        )

    try:
        run_until_interrupted(EmbeddedService(services), announce)
    except RuntimeError as exc:
        raise pacs_cli.fail(str(exc)) from None
    finally:
        services.close()


@app.command()
def web() -> None:
    """Run the web application only (DICOMweb, the API, /metrics): the production shape runs
    several behind a reverse proxy, beside `yunying receiver` and `yunying worker …`."""
    from reading.settings import ReadingSettings
    from viewer.serve import web_server

    settings = pacs_cli.load_settings()
    configure_logging(settings)
    services = pacs_cli.open_services(settings)
    refuse_demo_passwords(services)
    server = web_server(services, ReadingSettings())
    scheme = "https" if settings.http_tls_cert else "http"
    console.print(f"Yunying web on {scheme}://{settings.http_host}:{settings.http_port} — Ctrl-C stops it.")
    try:
        server.run()
    finally:
        services.close()


@app.command()
def demo(
    ct_slices: Annotated[int, typer.Option(help="Slices per demo CT series.")] = 40,
    exit_after_push: Annotated[bool, typer.Option(help="Stop once the demo studies are stable (for scripts).")] = False,
) -> None:
    """Create the demo consortium, start the service and push demo studies into it by C-STORE."""
    from reading.settings import ReadingSettings
    from viewer.demo import (
        generate_demo_studies,
        issue_demo_tokens,
        push_demo_studies,
        seed_consortium,
        seed_demo_logins,
        seed_readers,
    )
    from viewer.serve import EmbeddedService

    settings = pacs_cli.load_settings()
    if settings.mode is Mode.PRODUCTION:
        raise pacs_cli.fail(
            "`yunying demo` creates logins with public passwords: it does not run in production mode "
            "(YUNYING_MODE=production)"
        )
    update: dict[str, object] = {"mode": Mode.DEMO} if settings.mode is Mode.LOCAL else {}
    if "stability_seconds" not in settings.model_fields_set:
        update["stability_seconds"] = 5.0  # the demo shows stability within seconds, not a minute
    if "log_level" not in settings.model_fields_set:
        update["log_level"] = "WARNING"  # the demo prints the change feed instead of every instance
    settings = settings.model_copy(update=update)
    configure_logging(settings)
    upgrade(settings.resolved_database_url)
    services = pacs_cli.open_services(settings)
    with transaction(services.sessions) as session:
        created = seed_consortium(session) + seed_readers(session)
        tokens = issue_demo_tokens(session, Path(settings.home))
        logins = seed_demo_logins(session)
    if created:
        console.print(f"Demo consortium: created {', '.join(created)}")
    data_root = Path(settings.home) / "demo-data"
    with console.status("Generating demo studies (first run only)…"):
        studies = generate_demo_studies(data_root, ct_slices=ct_slices)
    reading = ReadingSettings()
    if "reading_ai_timeout_s" not in reading.model_fields_set:
        # The AI worker runs in the service and hands studies over itself; the sweeper only
        # steps in for a study AI has not finished within this.
        reading = reading.model_copy(update={"reading_ai_timeout_s": 60.0})
    service = EmbeddedService(services, reading)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        service.start()
        since = latest_change_seq(services)  # a re-run shows this run's changes, not history
        failures = push_demo_studies(settings, data_root, studies, console)
        console.print(
            f"\n[bold]Demo studies pushed[/bold] ({failures} failed). Where to look:\n"
            f"  yunying study list            studies, sites, instance counts, state (stable after "
            f"{settings.stability_seconds:g} s quiet)\n"
            f"  yunying changes               the change feed (study.received, study.stable, …)\n"
            f"  yunying site list / ae list   the demo consortium\n"
            f"  yunying worklist demo-li      the county reader's worklist (studies arrive once stable and "
            f"pre-screened by AI; without AI at most {reading.reading_ai_timeout_s:g} s after stable)\n"
            f"  yunying ai models / ai monitor the AI models, and how often readers agree with them\n"
            f"  yunying delivery list         reports on their way back to the sites\n"
            f"  curl http://{settings.http_host}:{settings.http_port}/readyz\n"
            f'  curl -H "Authorization: Bearer $(cat {tokens["demo-admin"]})" '
            f"http://{settings.http_host}:{settings.http_port}/dicomweb/studies   (QIDO-RS; the Fudong site's "
            f"token is {tokens['demo-fudong']})\n"
            f'  curl -H "Authorization: Bearer $(cat {tokens["demo-li"]})" '
            f"http://{settings.http_host}:{settings.http_port}/api/worklist   (李医生's worklist; docs/reading.md)\n"
            f"  storescu -aet FUDONG_CT -aec {settings.ae_title} 127.0.0.1 {settings.dicom_port} FILE.dcm\n"
            f"(run them with .venv/bin/ in front, or after `. .venv/bin/activate`; data under {settings.home})"
        )
        web_url = f"http://{settings.http_host}:{settings.http_port}"
        console.print(
            f"\n[bold]Web logins[/bold] (demo passwords, public: production refuses to start while one still "
            f"works) — open {web_url}/ in a browser, or POST {web_url}/api/session:"
        )
        for demo_login in logins:
            console.print(f"  {demo_login.login:<18} {demo_login.password:<18} {demo_login.who}")
        console.print("Following the change feed; Ctrl-C stops the service.\n")
        follow_changes(
            services,
            console,
            since=since,
            stop_when_stable=len(studies) if exit_after_push else None,
            timeout_s=settings.stability_seconds * 4 + 30,
        )
        if exit_after_push and failures:
            raise typer.Exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
        services.close()


FOLLOWED_KINDS = (
    "study.received",
    "study.stable",
    "ai.done",
    "ai.failed",
    "ai.skipped",
    "study.ready_for_reading",
    "task.queued",
    "study.reopened",
    "instance.quarantined",
    "instance.new_version",
    "association.rejected",
)


def latest_change_seq(services: Services) -> int:
    from sqlalchemy import func, select

    from pacs.index.models import Change

    with transaction(services.sessions) as session:
        return int(session.scalar(select(func.max(Change.seq))) or 0)


def follow_changes(
    services: Services, console: Console, *, since: int, stop_when_stable: int | None, timeout_s: float
) -> None:
    """Print study-level changes as they happen; with ``stop_when_stable`` return once that many
    studies are stable (or raise ``typer.Exit`` after ``timeout_s``)."""
    import time

    from sqlalchemy import func, select

    from pacs.index.models import Change, Study, StudyState

    last_seq = since
    started = time.monotonic()
    while True:
        with transaction(services.sessions) as session:
            rows = session.scalars(select(Change).where(Change.seq > last_seq).order_by(Change.seq)).all()
            # Counted from the studies, not the feed: a re-run re-sends known studies, which
            # are duplicates and stay stable without a new study.stable change.
            stable = session.scalar(select(func.count()).where(Study.state == StudyState.STABLE)) or 0
            receiving = session.scalar(select(func.count()).where(Study.state == StudyState.RECEIVING)) or 0
        for change in rows:
            last_seq = change.seq
            if change.kind in FOLLOWED_KINDS:
                detail = {
                    k: v
                    for k, v in change.payload.items()
                    if k in ("num_instances", "calling_ae", "reason", "model", "positives")
                }
                console.print(
                    f"  #{change.seq} {change.at:%H:%M:%S} {change.kind:<22} {change.study_uid or ''} {detail or ''}"
                )
        if stop_when_stable is not None:
            if stable >= stop_when_stable and receiving == 0:
                return
            if time.monotonic() - started > timeout_s:
                raise pacs_cli.fail(
                    f"only {stable} of {stop_when_stable} demo studies became stable in {timeout_s:g} s"
                )
        time.sleep(0.5)


def main() -> None:
    app()
