"""Fixtures of the Q/R tests: a running receiver holding studies of two sites (sent by C-STORE),
configured DICOM nodes, a dcmtk ``storescp`` as a C-MOVE destination, and runners for dcmtk's
``findscu``, ``movescu`` and ``getscu`` (which exit 0 even on failure: statuses are read from
their ``-v`` output)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pytest

from pacs.identity.nodes import add_node
from pacs.index.db import transaction
from pacs.part10 import file_meta_end
from tests.conftest import Fixture, add_demo_site, free_port, require, wait_for
from tests.dicomweb.conftest import make_study
from tests.pacs.test_receiver import pynetdicom_send

FINAL = re.compile(r"Received Final (?:Find|Move|Get) Response \(([^)]*)\)")


@dataclass
class Tool:
    """One dcmtk client run: its final status text and output."""

    final: str
    output: str
    files: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.final == "Success"


@dataclass
class QR:
    fixture: Fixture
    studies: dict[str, list[pydicom.Dataset]]
    destination_port: int
    tmp: Path

    @property
    def port(self) -> int:
        return self.fixture.port

    def run(self, tool: str, *args: str, calling: str = "FUDONG_CT", keys: dict[str, str], out: str = "") -> Tool:
        folder = self.tmp / (out or tool)
        folder.mkdir(parents=True, exist_ok=True)
        command = [tool, "-v", "-aet", calling, "-aec", "YUNYING", *args]
        if tool in {"findscu", "getscu"}:
            command += ["-od", str(folder)] + (["-X"] if tool == "findscu" else [])
        for key, value in keys.items():
            command += ["-k", f"{key}={value}"]
        command += ["127.0.0.1", str(self.port)]
        env = {**os.environ, "TCP_NODELAY": "1"}
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, cwd=folder)
        output = done.stdout + done.stderr
        found = FINAL.search(output)
        return Tool(found.group(1) if found else "", output, sorted(folder.glob("*")))

    def find(self, model: str, keys: dict[str, str], calling: str = "FUDONG_CT") -> tuple[Tool, list[pydicom.Dataset]]:
        """findscu with ``-P`` (patient root) or ``-S`` (study root); the answers as data sets."""
        out = f"find-{len(list(self.tmp.glob('find-*')))}"
        keys = {"SpecificCharacterSet": "ISO_IR 192", **keys}  # the command line is UTF-8
        result = self.run("findscu", model, calling=calling, keys=keys, out=out)
        return result, [pydicom.dcmread(path) for path in result.files if path.name.startswith("rsp")]


def data_set_bytes(path: Path) -> bytes:
    """A file's data set after group 0002 (a receiver rebuilds the file meta)."""
    offset = file_meta_end(path)
    assert offset is not None, f"{path} is not Part 10"
    return path.read_bytes()[offset:]


@pytest.fixture
def qr(start_receiver: Callable[..., Fixture], backend: str, tmp_path: Path) -> QR:
    fixture = start_receiver(backend)
    add_demo_site(fixture.services, name="Anfeng Health Centre", aes=(("ANFENG_CT", "127.0.0.1", None),))
    studies = {
        "fudong_chinese": make_study(301, "王^小明", date="20250405", slices=3),
        "fudong_latin": make_study(302, "ZHANG^SAN=张^三", date="20240110"),
        "anfeng": make_study(303, "王^小红", date="20250406"),
    }
    assert pynetdicom_send(fixture.port, studies["fudong_chinese"] + studies["fudong_latin"]) == [0] * 4
    assert pynetdicom_send(fixture.port, studies["anfeng"], calling="ANFENG_CT") == [0]
    destination_port = free_port()
    with transaction(fixture.services.sessions) as session:
        # The county PACS sees the whole consortium; Fudong's own PACS only Fudong's studies.
        add_node(
            session,
            ae_title="COUNTY_PACS",
            host="127.0.0.1",
            port=destination_port,
            allowed_address="127.0.0.1",
            consortium="Dongtai",
        )
        add_node(
            session,
            ae_title="FUDONG_PACS",
            host="127.0.0.1",
            port=destination_port,
            allowed_address="127.0.0.0/8",
            site="Fudong Health Centre",
        )
        add_node(
            session,
            ae_title="ELSEWHERE",
            host="127.0.0.1",
            port=destination_port,
            allowed_address="10.9.9.9",
            site="Fudong Health Centre",
        )
    return QR(fixture, studies, destination_port, tmp_path)


@pytest.fixture
def storescp(qr: QR) -> Iterator[Callable[..., Path]]:
    """Start dcmtk's storescp as the move destination (on the port the nodes name); returns the
    folder it writes to."""
    require("storescp")
    processes: list[subprocess.Popen[bytes]] = []

    def start(*options: str) -> Path:
        folder = qr.tmp / "received"
        folder.mkdir(exist_ok=True)
        process = subprocess.Popen(
            ["storescp", *options, "-od", str(folder), str(qr.destination_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)

        def listening() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", qr.destination_port)) == 0

        wait_for(listening, timeout=10)
        return folder

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)


@pytest.fixture(autouse=True)
def _dcmtk() -> None:
    for tool in ("findscu", "movescu", "getscu"):
        require(tool)
