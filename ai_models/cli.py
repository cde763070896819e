"""``yunying ai models|monitor`` and ``yunying worker ai``: the registry, readers' agreement
with the models, and the pre-screen worker as its own process (production shape)."""

from __future__ import annotations

import signal
import threading
from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from ai_models.feedback import agreement
from ai_models.registry import DEFAULT_REGISTRY, Registry, RegistryError
from ai_models.settings import AISettings
from pacs.cli_support import console, fail, load_settings, open_services, serve_metrics
from pacs.index.db import IndexUnavailable, transaction
from pacs.index.types import utcnow
from pacs.logs import configure_logging

ai_app = typer.Typer(help="AI pre-screening: the model registry and readers' agreement.", no_args_is_help=True)


def load_registry(settings: AISettings) -> Registry:
    try:
        return Registry.from_file(settings.registry)
    except RegistryError as exc:
        raise fail(str(exc)) from None


@ai_app.command("models")
def models() -> None:
    """The registered models: what they read, whether their weights check out, their card."""
    registry = load_registry(AISettings())
    table = Table("model", "version", "kind", "modalities", "body parts", "validated", "weights", "card")
    for entry in registry.entries:
        try:
            registry.verify(entry)
            weights = "ok" if entry.weights else "—"
        except RegistryError as exc:
            weights = f"[red]{exc}[/red]"
        table.add_row(
            entry.name,
            entry.version,
            entry.kind,
            " ".join(entry.modalities),
            " ".join(entry.body_parts) or "all",
            "yes" if entry.clinically_validated else "no (advisory)",
            weights,
            str(registry.card_path(entry)),
        )
    console.print(table)


@ai_app.command("monitor")
def monitor(
    days: Annotated[int | None, typer.Option(help="Only findings of the last N days.")] = None,
) -> None:
    """How often readers agreed with each model, per site: drift shows up here."""
    services = open_services(load_settings())
    try:
        since = utcnow() - timedelta(days=days) if days else None
        with transaction(services.sessions, read_only=True) as session:
            rows = agreement(session, since=since)
    except IndexUnavailable as exc:
        raise fail(f"index unavailable: {exc}\nCheck YUNYING_DATABASE_URL.") from None
    finally:
        services.close()
    table = Table("model", "version", "site", "findings", "reviewed", "opinions", "agreed", title="Readers' agreement")
    for row in rows:
        rate = f"{row.rate:.0%}" if row.rate is not None else "—"
        table.add_row(row.model, row.version, row.site, str(row.findings), str(row.reviewed), str(row.opinions), rate)
    console.print(table if rows else "No AI findings yet.")


def worker_ai(
    workers: Annotated[int, typer.Option(help="Worker threads in this process (each runs its own model process).")] = 1,
) -> None:
    """The AI pre-screen worker: takes ai.prescreen jobs with a lease. Several may run."""
    from ai_models.worker import AiWorker

    settings = load_settings()
    configure_logging(settings)
    serve_metrics(settings)
    ai = AISettings()
    registry = load_registry(ai)
    services = open_services(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    running = [AiWorker(services, ai, registry) for _ in range(max(1, workers))]
    for worker in running:
        worker.start()
    console.print(f"Running {len(running)} AI worker(s) with {len(registry.entries)} model(s); Ctrl-C stops.")
    stop.wait()
    for worker in running:
        worker.stop()
    services.close()


def register(app: typer.Typer, worker_app: typer.Typer) -> None:
    """Add ``yunying ai …`` to the root app and ``ai`` to its ``worker`` group."""
    app.add_typer(ai_app, name="ai")
    worker_app.command("ai")(worker_ai)


@ai_app.command("train")
def train(
    model: Annotated[str, typer.Argument(help="The model to train: chest-dx-triage or head-ct-ich.")],
    cases: Annotated[int | None, typer.Option(help="Training cases (default: the recipe's, as shipped).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: the recipe's).")] = None,
    seed: Annotated[int, typer.Option(help="First seed of the training cases.")] = 100_000,
    threads: Annotated[int, typer.Option(help="torch threads.")] = 2,
) -> None:
    """Train MODEL from scratch on generated phantoms (seeded), write its weights, pick its
    operating points on a validation set and record weights, sha256 and thresholds in the
    registry. Then run `yunying ai eval MODEL --write-card`."""
    from ai_models.training import TrainingError
    from ai_models.training import train as run_training

    settings = AISettings()
    path = settings.registry or DEFAULT_REGISTRY
    try:
        run_training(
            model, path, seed=seed, cases_override=cases, epochs_override=epochs, threads=threads, on_line=console.print
        )
    except (TrainingError, RegistryError) as exc:
        raise fail(str(exc)) from None


@ai_app.command("eval")
def evaluate(
    model: Annotated[str, typer.Argument(help="The model to evaluate: chest-dx-triage or head-ct-ich.")],
    cases: Annotated[int | None, typer.Option(help="Held-out cases (default: the recipe's, as in the card).")] = None,
    seed: Annotated[int, typer.Option(help="First seed of the held-out cases (training used others).")] = 900_000,
    size: Annotated[int | None, typer.Option(help="Film size (chest) or slices per study (head).")] = None,
    write_card: Annotated[bool, typer.Option("--write-card", help="Write the figures into the model's card.")] = False,
    threads: Annotated[int, typer.Option(help="torch threads.")] = 2,
) -> None:
    """Evaluate MODEL as registered (weights checked) on held-out phantoms: AUC, sensitivity and
    specificity at its operating points, per label."""
    from ai_models.training import TrainingError, card_block
    from ai_models.training import evaluate as run_evaluation
    from ai_models.training import write_card as write_figures

    settings = AISettings()
    registry = load_registry(settings)
    try:
        result = run_evaluation(
            model, settings.registry or DEFAULT_REGISTRY, seed=seed, count=cases, size=size, threads=threads
        )
    except (TrainingError, RegistryError) as exc:
        raise fail(str(exc)) from None
    table = Table(
        "label",
        "AUC",
        "sensitivity",
        "specificity",
        "operating point",
        "positives",
        "negatives",
        title=f"{model} {result.version}",
    )
    for f in result.labels:
        table.add_row(
            f.label,
            f"{f.auc:.3f}",
            f"{f.sensitivity:.3f}",
            f"{f.specificity:.3f}",
            f"{f.threshold:.2f}",
            str(f.positives),
            str(f.negatives),
        )
    console.print(table)
    console.print(
        f"{result.cases} cases, seeds {result.seeds[0]}–{result.seeds[1]}, {result.seconds_per_case:.2f} s per case"
    )
    if write_card:
        card = registry.card_path(registry.get(model))
        write_figures(card, result)
        console.print(f"wrote the figures into {card}")
    else:
        console.print(card_block(result), markup=False, soft_wrap=True)
