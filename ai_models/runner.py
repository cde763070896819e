"""Running a model with a time limit that really stops it: each model runs in a child process
(``forkserver``: forked from a clean server process, never from the worker's threads), and a
model past its limit is killed with its process — a hung ``predict`` in C code ignores any
signal or flag a thread could send. The next model gets a fresh child.

The child loads each model once (weights checked by the registry) and keeps it for the next
study; it runs ``prepare → predict → findings`` under ``torch.inference_mode()`` with a
bounded number of threads. Only data crosses the pipe: the study in, findings or a reason out.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final, Literal

import structlog

from ai_models.contract import Finding, NotApplicable, StudyInput
from ai_models.registry import Registry, RegistryEntry

log = structlog.get_logger(__name__)

STARTUP_TIMEOUT_S: Final = 120.0  # a cold child imports torch: seconds, not the model's time

_CONTEXT = multiprocessing.get_context("forkserver")
# The server imports these once and every child forks from it with them loaded, so a child
# replacing a killed one starts in milliseconds instead of importing torch again (seconds).
# torch is absent from the base install: the server skips a preload it cannot import.
_CONTEXT.set_forkserver_preload(["ai_models.runner", "torch"])


@dataclass(frozen=True)
class ModelOutcome:
    """What one model did with one study."""

    entry: RegistryEntry
    status: Literal["done", "failed", "skipped"]
    findings: tuple[Finding, ...] = ()
    reason: str = ""
    seconds: float = 0.0


@dataclass
class _Child:
    process: Any  # multiprocessing.Process of the forkserver context
    connection: Connection


@dataclass
class ModelRunner:
    """One child process running models for one worker. Not thread-safe: one per worker."""

    registry: Registry
    threads: int = 2
    _child: _Child | None = field(default=None, init=False)

    def run(self, entry: RegistryEntry, study: StudyInput, timeout_s: float) -> ModelOutcome:
        """Run ``entry``'s model on ``study`` within ``timeout_s`` seconds. Never raises for
        what the model does: a raise, a hang, a crash of the child are outcomes (``failed``
        with the reason); ``NotApplicable`` is ``skipped``."""
        started = time.monotonic()
        try:
            child = self._ensure_child()
        except RuntimeError as exc:
            return ModelOutcome(entry, "failed", reason=str(exc))
        try:
            child.connection.send((str(self.registry.root), entry, study))
            ready = child.connection.poll(timeout_s)
        except (BrokenPipeError, EOFError, OSError) as exc:
            self.close()
            return ModelOutcome(entry, "failed", reason=f"model process lost: {exc}")
        if not ready:
            self.close()
            log.warning("ai.model_timed_out", model=entry.name, version=entry.version, study_uid=study.study_uid)
            return ModelOutcome(entry, "failed", reason=f"timed out after {timeout_s:g} s", seconds=timeout_s)
        try:
            status, findings, reason = child.connection.recv()
        except (EOFError, OSError):
            code = self._exit_code()
            self.close()
            return ModelOutcome(entry, "failed", reason=f"model process died (exit code {code})")
        return ModelOutcome(entry, status, tuple(findings), reason, time.monotonic() - started)

    def close(self) -> None:
        """Stop the child (killed: it may be hung); the next ``run`` starts another."""
        child, self._child = self._child, None
        if child is None:
            return
        with contextlib.suppress(OSError):
            child.connection.close()
        if child.process.is_alive():
            child.process.kill()
        child.process.join(5)

    def _exit_code(self) -> int | None:
        if self._child is None:
            return None
        self._child.process.join(1)
        code: int | None = self._child.process.exitcode
        return code

    def _ensure_child(self) -> _Child:
        if self._child is not None and self._child.process.is_alive():
            return self._child
        self.close()
        parent_end, child_end = _CONTEXT.Pipe()
        process = _CONTEXT.Process(target=_serve, args=(child_end, self.threads), name="ai-model", daemon=True)
        process.start()
        child_end.close()
        self._child = _Child(process, parent_end)
        if not parent_end.poll(STARTUP_TIMEOUT_S) or parent_end.recv() != "ready":
            self.close()
            raise RuntimeError(f"the model process did not start within {STARTUP_TIMEOUT_S:g} s")
        return self._child


def _serve(connection: Connection, threads: int) -> None:
    """The child's loop: load (once) and run the model of each request until the pipe closes."""
    # Ctrl-C reaches the whole process group; the worker stops its child itself (close()).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inference: Any = contextlib.nullcontext
    try:
        import torch

        torch.set_num_threads(threads)
        inference = torch.inference_mode
    except ImportError:  # the base install has no torch: rule-based models still run
        pass
    connection.send("ready")
    models: dict[tuple[str, str, str, str | None], Any] = {}
    while True:
        try:
            root, entry, study = connection.recv()
        except (EOFError, OSError):
            return
        try:
            key = (root, entry.name, entry.version, entry.sha256)
            if key not in models:
                models[key] = Registry([entry], Path(root)).load(entry)
            model = models[key]
            with inference():
                prepared = model.prepare(study)
                prediction = model.predict(prepared)
                findings: list[Finding] = model.findings(study, prediction)
            reply: tuple[str, list[Finding], str] = ("done", findings, "")
        except NotApplicable as exc:
            reply = ("skipped", [], str(exc) or "the model does not read this study")
        except Exception as exc:  # noqa: BLE001  (whatever a model raises is its failure, reported)
            reply = ("failed", [], f"{type(exc).__name__}: {exc}")
        connection.send(reply)
