"""The real-world conformance corpus, sent by C-STORE to a running receiver.

Every ``.dcm`` of pydicom-data plus a chosen set of pydicom's own test files (see
``corpus_expectations``) goes to the receiver over pynetdicom, and each file must be accepted or
refused exactly as docs/conformance.md says — the expectation table was worked out from the
files and the policy, not recorded from the receiver.

How the corpus is sent (docs/conformance.md, "How the corpus is sent"): each file proposes its
own SOP class with its own transfer syntax, one presentation context per pair; the data set
goes on the wire byte for byte as it is in the file (the bytes after group 0002, or the whole
file when it has no Part-10 header). The C-STORE's Affected SOP Class / Instance UIDs are the
data set's; a file whose data set has none falls back to its file meta's, then to Secondary
Capture and a fresh UID — what a careless router would do — so the receiver's own defence is
exercised. Without file meta, the transfer syntax is the encoding pydicom detects.

Several corpus files share a SOP Instance UID (one image in many encodings). Sent to one
receiver they would exercise the re-send policy instead of acceptance, so the corpus is split
into rounds in which every UID is unique, each round with a fresh receiver. The re-send
policy itself is checked with real files in ``test_real_world_resends``.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import data_store
import pydicom
import pytest
from pydicom.filereader import read_file_meta_info
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)
from pynetdicom import AE
from pynetdicom.presentation import AllStoragePresentationContexts
from sqlalchemy import select

from pacs import events
from pacs.dimse import statuses
from pacs.dimse.contexts import ACCEPTED_TRANSFER_SYNTAXES, REFUSED_TRANSFER_SYNTAXES
from pacs.index.db import transaction
from pacs.index.models import Alert, Instance, Quarantine
from pacs.part10 import file_meta_end
from tests.conftest import ROOT, Fixture
from tests.pacs.corpus_expectations import EXPECTED

PYDICOM_DATA = Path(data_store.__file__).parent / "data"
PYDICOM_FILES = Path(pydicom.__file__).parent / "data"
SOURCES = {
    "data": PYDICOM_DATA,
    "test_files": PYDICOM_FILES / "test_files",
    "charset_files": PYDICOM_FILES / "charset_files",
    "dicomdirtests": PYDICOM_FILES / "test_files" / "dicomdirtests",
}
CALLING_AE = "FUDONG_CT"
COMMAND_UID_FROM_META = "command-uid-from-meta"
ENCODING_SYNTAX = {
    (True, True): ImplicitVRLittleEndian,
    (False, True): ExplicitVRLittleEndian,
    (False, False): ExplicitVRBigEndian,
}
# The receiver's quarantine reason code for each failure status it sends for C-STORE data.
QUARANTINE_CODE = {
    0xC000: "unparsable",
    0xC001: "missing-uid",
    0xC002: "invalid-uid",
    0xC003: "truncated",
    0xC004: "pixel-data-short",
    0xC005: "foreign-study",
    0xC006: "series-conflict",
    0xC007: "instance-moved",
    0xA900: "command-mismatch",
}
MAX_CONTEXTS = 120  # PS3.8 9.3.2.2: at most 128 presentation contexts per association
# This test checks what each file gets, not how fast: both ends wait long enough for a loaded CI
# machine (a round aborted once on CI by a 30 s network timeout after 19 s of sending, though each
# C-STORE takes under 0.3 s here, even with four busy loops beside it).
TIMEOUT_S = 120


# ---------------------------------------------------------------- the corpus and its table


def corpus_files() -> dict[str, Path]:
    """Every file the table must cover, by key (see corpus_expectations)."""
    files = {f"data/{p.name}": p for p in sorted(PYDICOM_DATA.glob("*.dcm"))}
    files |= {f"test_files/{p.name}": p for p in sorted(SOURCES["test_files"].glob("*.dcm"))}
    files |= {f"charset_files/{p.name}": p for p in sorted(SOURCES["charset_files"].glob("*.dcm"))}
    for path in sorted(SOURCES["dicomdirtests"].rglob("*")):
        relative = path.relative_to(SOURCES["dicomdirtests"]).as_posix()
        if not path.is_file() or "README" in path.name:
            continue
        if relative.startswith("TINY_ALPHA/PT") and relative != "TINY_ALPHA/PT000000/ST000000/SE000000/IM000000":
            continue
        files[f"dicomdirtests/{relative}"] = path
    return files


def path_of(key: str) -> Path:
    source, _, rest = key.partition("/")
    return SOURCES[source] / rest.partition("#")[0]


@dataclass(frozen=True)
class Expectation:
    kind: str  # "stored" | "refused" | "failure"
    code: int | None  # negotiation result (refused) or C-STORE status (failure)
    text: str


def parse_expectation(text: str) -> Expectation:
    if text == "stored" or text.startswith("stored: "):
        return Expectation("stored", 0x0000, text)
    if match := re.fullmatch(r"refused-at-negotiation: (0x0[34]) .+", text, re.DOTALL):
        return Expectation("refused", int(match[1], 16), text)
    if match := re.fullmatch(r"failure (0x[0-9A-F]{4}): .+", text, re.DOTALL):
        return Expectation("failure", int(match[1], 16), text)
    raise ValueError(f"not an expectation: {text!r}")


# ---------------------------------------------------------------- the sender


@dataclass(frozen=True)
class Planned:
    """One C-STORE as the corpus sender makes it."""

    key: str
    sop_class: str
    sop_instance: str
    transfer_syntax: str
    path: Path
    data_set_offset: int  # the data set on the wire is the file from here on, unchanged
    data_set_sha256: str
    data_set_instance: str | None  # the SOP Instance UID inside the data set


@cache
def plan(key: str) -> Planned:
    path = path_of(key)
    raw = path.read_bytes()
    offset = file_meta_end(path) or 0  # None: no Part-10 header, the whole file is the data set
    ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    meta = ds.file_meta
    syntax = str(meta.get("TransferSyntaxUID") or "") or ENCODING_SYNTAX[tuple(ds.original_encoding)]
    in_data_set = str(ds.get("SOPInstanceUID") or "") or None
    sop_class = str(ds.get("SOPClassUID") or "") or str(meta.get("MediaStorageSOPClassUID") or "")
    sop_instance = in_data_set or str(meta.get("MediaStorageSOPInstanceUID") or "")
    if key.endswith("#" + COMMAND_UID_FROM_META):
        sop_instance = str(meta.MediaStorageSOPInstanceUID)
    return Planned(
        key=key,
        sop_class=sop_class or SecondaryCaptureImageStorage,
        sop_instance=sop_instance or generate_uid(entropy_srcs=[key]),
        transfer_syntax=str(syntax),
        path=path,
        data_set_offset=offset,
        data_set_sha256=hashlib.sha256(raw[offset:]).hexdigest(),
        data_set_instance=in_data_set,
    )


def _meta_element(element: int, vr: bytes, value: bytes) -> bytes:
    if vr == b"OB":
        return struct.pack("<HH2s2xL", 0x0002, element, vr, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _ui(uid: str) -> bytes:
    value = uid.encode("ascii")
    return value + b"\0" if len(value) % 2 else value


def wrap(planned: Planned, folder: Path) -> Path:
    """A Part-10 file whose meta names what the C-STORE should say and whose data set is the
    corpus file's bytes unchanged; pynetdicom's chunked send streams it as is."""
    meta = b"".join(
        [
            _meta_element(0x0001, b"OB", b"\x00\x01"),
            _meta_element(0x0002, b"UI", _ui(planned.sop_class)),
            _meta_element(0x0003, b"UI", _ui(planned.sop_instance)),
            _meta_element(0x0010, b"UI", _ui(planned.transfer_syntax)),
            _meta_element(0x0012, b"UI", _ui("1.2.826.0.1.3680043.10.1234.1")),
        ]
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha1(planned.key.encode()).hexdigest()}.dcm"
    group_length = _meta_element(0x0000, b"UL", struct.pack("<L", len(meta)))
    path.write_bytes(b"\0" * 128 + b"DICM" + group_length + meta + planned.path.read_bytes()[planned.data_set_offset :])
    return path


@dataclass
class Sent:
    negotiation: int  # 0x00 accepted, else the presentation context result
    status: int | None = None  # None: not sent (refused) or no response
    comment: str = ""
    association_kept: bool = True


def send(port: int, keys: list[str], folder: Path) -> dict[str, Sent]:
    """C-STORE each file; the associations carry at most MAX_CONTEXTS contexts."""
    results: dict[str, Sent] = {}
    remaining = list(keys)
    while remaining:
        batch: list[str] = []
        pairs: set[tuple[str, str]] = set()
        for key in remaining:
            pair = (plan(key).sop_class, plan(key).transfer_syntax)
            if pair not in pairs and len(pairs) == MAX_CONTEXTS:
                break
            pairs.add(pair)
            batch.append(key)
        remaining = remaining[len(batch) :]
        results |= _send_batch(port, batch, sorted(pairs), folder)
    return results


def _send_batch(port: int, keys: list[str], pairs: list[tuple[str, str]], folder: Path) -> dict[str, Sent]:
    ae = AE(ae_title=CALLING_AE)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT_S
    for sop_class, syntax in pairs:
        ae.add_requested_context(sop_class, [syntax])
    assoc = ae.associate("127.0.0.1", port, ae_title="YUNYING")
    assert assoc.is_established, f"association refused: {assoc.acceptor.primitive}"
    accepted = {(str(cx.abstract_syntax), str(cx.transfer_syntax[0])) for cx in assoc.accepted_contexts}
    rejected = {(str(cx.abstract_syntax), str(cx.transfer_syntax[0])): cx.result for cx in assoc.rejected_contexts}
    results: dict[str, Sent] = {}
    try:
        for key in keys:
            planned = plan(key)
            pair = (planned.sop_class, planned.transfer_syntax)
            if pair not in accepted:
                results[key] = Sent(negotiation=int(rejected[pair]))
                continue
            if not assoc.is_established:
                results[key] = Sent(negotiation=0x00, comment="association lost before this C-STORE")
                continue
            try:
                response = assoc.send_c_store(wrap(planned, folder))
            except RuntimeError as exc:  # the association ended between the check above and the send
                results[key] = Sent(0x00, None, f"association lost at this C-STORE: {exc}", False)
                continue
            status = int(response.Status) if "Status" in response else None
            results[key] = Sent(0x00, status, str(response.get("ErrorComment", "")), assoc.is_established)
    finally:
        if assoc.is_established:
            assoc.release()
    return results


# ---------------------------------------------------------------- rounds of unique UIDs


def instance_uids(key: str) -> set[str]:
    planned = plan(key)
    return {uid for uid in (planned.sop_instance, planned.data_set_instance) if uid}


def split_into_rounds(keys: Iterable[str]) -> list[list[str]]:
    rounds: list[tuple[list[str], set[str]]] = []
    for key in keys:
        uids = instance_uids(key)
        for members, used in rounds:
            if not uids & used:
                members.append(key)
                used |= uids
                break
        else:
            rounds.append(([key], set(uids)))
    return [members for members, _ in rounds]


ROUNDS = split_into_rounds(sorted(EXPECTED))


# ---------------------------------------------------------------- checks


def _stored_rows(fx: Fixture) -> list[Instance]:
    with transaction(fx.services.sessions) as session:
        return list(session.scalars(select(Instance)))


def check_outcomes(fx: Fixture, keys: list[str], sent: dict[str, Sent], folder: Path) -> list[str]:
    """Every difference between what each file got and its expectation, in words."""
    problems: list[str] = []
    rows = {row.sop_instance_uid: row for row in _stored_rows(fx) if row.is_current}
    quarantine_expected: Counter[str] = Counter()
    stored_expected = 0
    for key in keys:
        expected, got, planned = parse_expectation(EXPECTED[key]), sent[key], plan(key)
        where = f"{key}: expected {expected.text!r}"
        if not got.association_kept:
            problems.append(f"{key}: the association did not survive this C-STORE (status {got.status})")
        if expected.kind == "refused":
            if got.negotiation != expected.code:
                problems.append(f"{where}, got negotiation result 0x{got.negotiation:02X}, status {got.status}")
            continue
        if expected.kind == "failure":
            quarantine_expected[QUARANTINE_CODE[expected.code or 0]] += 1
        if got.negotiation != 0x00:
            problems.append(f"{where}, but its presentation context was rejected (0x{got.negotiation:02X})")
            continue
        if got.status != expected.code:
            shown = "no response" if got.status is None else f"0x{got.status:04X}"
            problems.append(f"{where}, got {shown} {got.comment!r}")
            continue
        if expected.kind == "failure":
            if planned.sop_instance in rows:
                problems.append(f"{where}, but an instance was indexed under {planned.sop_instance}")
            continue
        stored_expected += 1
        problems += _check_stored(fx, key, planned, rows.get(planned.sop_instance), folder)

    with transaction(fx.services.sessions) as session:
        quarantined = Counter(session.scalars(select(Quarantine.reason_code)))
        alerts = list(session.scalars(select(Alert.kind)))
    if quarantined != quarantine_expected:
        problems.append(f"quarantine reasons {dict(quarantined)}, expected {dict(quarantine_expected)}")
    if alerts:
        problems.append(f"unexpected alerts: {alerts}")
    if len(rows) != stored_expected or len(fx.changes(events.INSTANCE_STORED)) != stored_expected:
        problems.append(f"{len(rows)} instances indexed, expected {stored_expected}")
    return problems


def _check_stored(fx: Fixture, key: str, planned: Planned, row: Instance | None, folder: Path) -> list[str]:
    if row is None:
        return [f"{key}: Success but no current instance {planned.sop_instance} in the index"]
    problems = []
    stored = folder / "stored" / f"{row.id}.dcm"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(fx.services.store.get(row.object_key))
    offset = file_meta_end(stored)
    if offset != row.dataset_offset:
        problems.append(f"{key}: stored data set starts at {offset}, the index says {row.dataset_offset}")
    sent_sha = planned.data_set_sha256
    stored_sha = hashlib.sha256(stored.read_bytes()[offset or 0 :]).hexdigest()
    if stored_sha != sent_sha or row.sha256 != sent_sha:
        problems.append(
            f"{key}: stored data set sha256 {stored_sha[:12]}… (index {row.sha256[:12]}…) "
            f"differs from the sent one {sent_sha[:12]}…"
        )
    stored_syntax = str(read_file_meta_info(stored).get("TransferSyntaxUID", ""))
    if stored_syntax != planned.transfer_syntax or row.transfer_syntax_uid != planned.transfer_syntax:
        problems.append(
            f"{key}: stored as {stored_syntax} (index {row.transfer_syntax_uid}), sent as {planned.transfer_syntax}"
        )
    if row.sop_class_uid != planned.sop_class:
        problems.append(f"{key}: indexed as SOP class {row.sop_class_uid}, sent {planned.sop_class}")
    return problems


# ---------------------------------------------------------------- tests


def test_table_covers_the_corpus() -> None:
    files = corpus_files()
    listed = {key.partition("#")[0] for key in EXPECTED}
    assert sorted(set(files) - listed) == [], "corpus files without an expectation"
    assert sorted(listed - set(files)) == [], "expectations for files not in the corpus"
    for key, text in EXPECTED.items():
        parse_expectation(text)
        assert path_of(key).is_file(), key
    assert len(ROUNDS) < 25, "rounds are a fresh receiver each: keep them few"


@pytest.mark.parametrize("round_no", range(len(ROUNDS)))
def test_corpus_round(start_receiver, chunked_send, tmp_path: Path, round_no: int) -> None:
    keys = ROUNDS[round_no]
    fx = start_receiver(dimse_timeout_s=TIMEOUT_S, network_timeout_s=TIMEOUT_S)
    sent = send(fx.port, keys, tmp_path / "send")
    problems = check_outcomes(fx, keys, sent, tmp_path)
    assert not problems, f"{len(problems)} of {len(keys)} corpus files not handled as documented:\n" + "\n".join(
        problems
    )


def test_real_world_resends(start_receiver, chunked_send, tmp_path: Path) -> None:
    """The re-send policy with the corpus's own look-alikes: an identical re-send is stored once;
    the same SOP instance with other pixel bytes is answered Success but quarantined and the
    first copy kept; a header-only change (an SR without Pixel Data) becomes version 2 with
    version 1 kept. Each raises an alert except the identical re-send."""
    fx = start_receiver()
    first, other_pixels = "test_files/MR_small.dcm", "test_files/MR_small_bigendian.dcm"
    sr_v1, sr_v2 = "test_files/reportsi.dcm", "test_files/reportsi_with_empty_number_tags.dcm"
    keys = [first, first, other_pixels, sr_v1, sr_v2]
    statuses_seen = []
    for key in keys:  # one association per file: a modality re-sending later
        statuses_seen.append(send(fx.port, [key], tmp_path / "send")[key].status)
    assert statuses_seen == [0x0000] * 5

    rows = _stored_rows(fx)
    mr = [row for row in rows if row.sop_instance_uid == plan(first).sop_instance]
    assert [(row.version, row.is_current) for row in mr] == [(1, True)]
    assert mr[0].sha256 == plan(first).data_set_sha256, "the first copy is kept"
    sr = sorted((row for row in rows if row.sop_instance_uid == plan(sr_v1).sop_instance), key=lambda r: r.version)
    assert [(row.version, row.is_current) for row in sr] == [(1, False), (2, True)]
    assert [row.sha256 for row in sr] == [plan(k).data_set_sha256 for k in (sr_v1, sr_v2)]
    assert all(fx.services.store.exists(row.object_key) for row in sr), "the old version is kept"
    with transaction(fx.services.sessions) as session:
        assert list(session.scalars(select(Quarantine.reason_code))) == ["pixel-conflict"]
        assert sorted(session.scalars(select(Alert.kind))) == [events.INSTANCE_NEW_VERSION, events.INSTANCE_QUARANTINED]


def test_conformance_statement_matches_the_code() -> None:
    """docs/conformance.md states the SOP class count, the transfer syntaxes and the status
    table; they must be the code's."""
    text = (ROOT / "docs" / "conformance.md").read_text(encoding="utf-8")
    storage_classes = {str(cx.abstract_syntax) for cx in AllStoragePresentationContexts}
    assert f"{len(storage_classes)} Storage SOP Classes" in text
    for syntax in ACCEPTED_TRANSFER_SYNTAXES:
        assert re.search(rf"^\| `{re.escape(syntax)}` \| {re.escape(UID(syntax).name)} \| accepted", text, re.M), syntax
    for syntax in REFUSED_TRANSFER_SYNTAXES:
        assert re.search(rf"^\| `{re.escape(syntax)}` \| {re.escape(UID(syntax).name)} \| \*\*refused", text, re.M)

    documented = set(re.findall(r"^\| `(0x[0-9A-F]{4})` \| `([a-z0-9_-]+)` \|", text, re.MULTILINE))
    from_code = {(f"0x{status:04X}", kind.value) for kind, status in statuses.OUTCOME_STATUS.items()}
    from_code |= {(f"0x{status:04X}", code) for code, status in statuses.CANNOT_UNDERSTAND.items()}
    from_code |= {(f"0x{statuses.DATASET_DOES_NOT_MATCH:04X}", "command-mismatch")}
    # pacs/dimse/store_scp.py on_c_store: the per-association instance and byte limits.
    from_code |= {(f"0x{statuses.OUT_OF_RESOURCES:04X}", "association-limit")}
    # ... and a data set the receiver's disk could not take (pacs/dimse/spool.py).
    from_code |= {(f"0x{statuses.OUT_OF_RESOURCES:04X}", "spool-failed")}
    assert documented == from_code
