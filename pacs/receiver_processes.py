"""``yunying receiver``: one receiver process, or a supervisor and N worker processes.

With ``--processes N`` the command replaces itself (same PID, so signals and service managers
keep working) with ``python -m pacs.receiver_processes``, the supervisor. It imports little
(a few MB instead of the service's ~130 MB), binds the DICOM port (and the TLS port where
one is set) once, and starts N workers that all accept from those sockets. Each worker leaves
a waiting connection to a sibling that holds fewer (pacs/dimse/balance.py), so four
associations on two processes run two and two.

The supervisor stops every worker on SIGTERM or Ctrl-C, and starts again a worker that died
(unless it died within ``_TOO_SOON_S`` of its start: then the configuration, not the worker,
is at fault, and the supervisor stops with the worker's exit status).

Only this module's top level runs in the supervisor: keep its imports light.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.connection
import signal
import socket
import sys
import time
from collections.abc import MutableSequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.context import SpawnProcess
    from multiprocessing.synchronize import Event

    from pacs.dimse.balance import SharedListening
    from pacs.settings import Settings

# A worker that dies sooner than this after its start is not started again.
_TOO_SOON_S = 5.0
# Published as a dead worker's load, so that no sibling leaves a connection to it.
_GONE = 1 << 30


def run_receiver(
    settings: Settings,
    *,
    stability: bool,
    sweep: bool,
    process_index: int = 0,
    shared: SharedListening | None = None,
    ready: Event | None = None,
) -> None:
    """One receiver process (orphan sweep, receiver, stability watcher) until SIGTERM or Ctrl-C."""
    import threading

    from pacs.cli_support import fail, open_services, serve_metrics
    from pacs.logs import configure_logging
    from pacs.receiving import Receiving

    configure_logging(settings)
    serve_metrics(settings, process_index)
    services = open_services(settings)
    receiving = Receiving(services, stability=stability, sweep=sweep)
    try:
        receiving.start(shared)
    except RuntimeError as exc:  # e.g. DICOM TLS asked for without its certificates
        services.close()
        raise fail(str(exc), 2) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if ready is not None:
        ready.set()
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiving.stop()
        services.close()


def _worker(
    index: int,
    plain: socket.socket,
    tls: socket.socket | None,
    counts: MutableSequence[int],
    ready: Event,
    stability: bool,
    sweep: bool,
) -> None:
    import typer

    from pacs.cli_support import load_settings
    from pacs.dimse.balance import SharedListening, SharedLoad

    try:
        settings = load_settings()
        shared = SharedListening(plain=plain, tls=tls, load=SharedLoad(counts, index))
        run_receiver(settings, stability=stability, sweep=sweep, process_index=index, shared=shared, ready=ready)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)


def _bind(host: str, port: int, what: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        print(f"Cannot listen on {host}:{port}: {exc.strerror or exc} (set {what})", file=sys.stderr)
        sys.exit(2)


class _Stop(Exception):
    """SIGTERM or SIGINT reached the supervisor."""


def _raise_stop(*_: Any) -> None:
    raise _Stop


@dataclass(frozen=True)
class _Worker:
    process: SpawnProcess
    started_at: float  # time.monotonic()
    ready: Event  # set once it listens


class Supervisor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.context = multiprocessing.get_context("spawn")
        self.plain = _bind(args.host, args.port, "YUNYING_DICOM_HOST / YUNYING_DICOM_PORT")
        self.tls = _bind(args.tls_host, args.tls_port, "YUNYING_DICOM_TLS_PORT") if args.tls_port else None
        self.counts = self.context.RawArray("i", args.processes)
        self.workers: dict[int, _Worker] = {}

    def _start(self, index: int) -> None:
        first = index not in self.workers  # a restart skips the start-up sweep
        self.counts[index] = 0
        ready = self.context.Event()
        worker = self.context.Process(
            target=_worker,
            args=(
                index,
                self.plain,
                self.tls,
                self.counts,
                ready,
                self.args.stability and index == 0,
                first and index == 0,
            ),
            name=f"yunying-receiver-{index}",
        )
        worker.start()
        self.workers[index] = _Worker(worker, time.monotonic(), ready)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, _raise_stop)
        signal.signal(signal.SIGINT, _raise_stop)
        try:
            for index in range(self.args.processes):
                self._start(index)
            self._wait_ready()
            return self._watch()
        except _Stop:
            return 0
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            self._stop_all()

    def _wait_ready(self) -> None:
        while not all(worker.ready.is_set() for worker in self.workers.values()):
            for index, worker in self.workers.items():
                if not worker.process.is_alive():
                    code = worker.process.exitcode or 1
                    print(f"Receiver process {index} exited with status {code} before listening.", file=sys.stderr)
                    raise SystemExit(code)
            time.sleep(0.05)
        address = f"{self.args.host}:{self.plain.getsockname()[1]}"
        tls = f", DICOM TLS on {self.args.tls_host}:{self.tls.getsockname()[1]}" if self.tls else ""
        print(f"{self.args.processes} receiver processes listening on {address}{tls}", flush=True)

    def _watch(self) -> int:
        while True:
            sentinels = {worker.process.sentinel: index for index, worker in self.workers.items()}
            for sentinel in multiprocessing.connection.wait(list(sentinels)):
                index = sentinels[sentinel]  # type: ignore[index]
                worker = self.workers[index].process
                worker.join()
                self.counts[index] = _GONE
                lived = time.monotonic() - self.workers[index].started_at
                if lived < _TOO_SOON_S:
                    print(
                        f"Receiver process {index} exited with status {worker.exitcode} after {lived:.1f} s; "
                        "stopping the others (see the log above for why).",
                        file=sys.stderr,
                    )
                    return worker.exitcode or 1
                print(
                    f"Receiver process {index} exited with status {worker.exitcode}; starting it again.",
                    file=sys.stderr,
                )
                self._start(index)

    def _stop_all(self) -> None:
        processes = [worker.process for worker in self.workers.values()]
        for worker in processes:
            if worker.is_alive():
                worker.terminate()  # SIGTERM: the worker stops its receiver in order
        deadline = time.monotonic() + 15
        for worker in processes:
            worker.join(max(0.1, deadline - time.monotonic()))
            if worker.is_alive():
                worker.kill()
                worker.join(5)
        self.plain.close()
        if self.tls is not None:
            self.tls.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pacs.receiver_processes",
        description="Supervise N receiver processes sharing one port. Started by `yunying receiver --processes N`, "
        "which passes the addresses from its settings; the workers read the rest from the same environment.",
    )
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-host", default="0.0.0.0")
    parser.add_argument("--tls-port", type=int, default=0)
    parser.add_argument("--no-stability", dest="stability", action="store_false")
    args = parser.parse_args(argv)
    if args.processes < 2:
        parser.error("--processes must be at least 2 (one process needs no supervisor: `yunying receiver`)")
    return Supervisor(args).run()


if __name__ == "__main__":
    sys.exit(main())
