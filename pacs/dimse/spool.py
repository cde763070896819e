"""The spool file an arriving data set is written into (pacs/dimse/receiver.py)."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class SpoolFile:
    """The file pynetdicom writes an arriving data set into, made to survive a full disk: the
    first failed write or flush is remembered, the partial file removed, and the rest of the
    data set read and dropped — so the C-STORE can be answered 0xA700 (out of resources) instead
    of pynetdicom aborting the association (measured: ENOSPC raised inside its PDU decoding).
    pynetdicom calls ``write``, ``file.flush`` and ``close`` and reads ``name``."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.name: str = inner.name
        self.file = self  # pynetdicom flushes through ``.file``
        self.failed: OSError | None = None

    def write(self, data: bytes) -> int:
        if self.failed is None:
            try:
                return int(self._inner.write(data))
            except OSError as exc:
                self._fail(exc)
        return len(data)

    def flush(self) -> None:
        if self.failed is None:
            try:
                self._inner.flush()
            except OSError as exc:
                self._fail(exc)

    def close(self) -> None:
        if self.failed is None:
            try:
                self._inner.close()
            except OSError as exc:
                self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.failed = exc
        log.error("receiver.spool_failed", path=self.name, error=str(exc))
        with contextlib.suppress(OSError):
            self._inner.close()
        with contextlib.suppress(OSError):
            os.unlink(self.name)
