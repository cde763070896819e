"""STOW-RS over real HTTP: storing with the ``dicomweb-client`` library as a third-party sender
would, and with raw ``httpx`` bodies where the library cannot express the case (broken framing,
a part that is not DICOM, caps). Every refusal is checked for its answer *and* for what was
left behind: no instance row, no object, no spool file."""

from __future__ import annotations

import copy
import io
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian
from requests.exceptions import HTTPError
from sqlalchemy import select

from pacs import events
from pacs.identity.users import add_user, create_token
from pacs.index.db import transaction
from pacs.index.models import AccessRecord, Instance, Job, Quarantine, Study
from pacs.index.types import utcnow
from pacs.stability import mark_stable_studies
from tests.conftest import MotoServer
from tests.dicomweb.conftest import Web, make_study
from tests.pacs.helpers import all_instances, file_dataset_sha256, stored_dataset_sha256

BOUNDARY = "yunying-stow-test"
FAILED, REFERENCED, RETRIEVE_URL = "00081198", "00081199", "00081190"
FAILURE_REASON, WARNING_REASON, COMMENT = "00081197", "00081196", "00000902"
SOP_INSTANCE = "00081155"


def part10(ds: pydicom.Dataset) -> bytes:
    """The bytes dicomweb-client sends for a data set (``pydicom.dcmwrite``)."""
    with io.BytesIO() as buffer:
        pydicom.dcmwrite(buffer, ds)
        return buffer.getvalue()


def related(*parts: bytes, part_type: str = "application/dicom", close: bool = True) -> bytes:
    body = b"".join(f"--{BOUNDARY}\r\nContent-Type: {part_type}\r\n\r\n".encode() + part + b"\r\n" for part in parts)
    return body + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


def post(
    web: Web,
    body: bytes | Iterator[bytes],
    *,
    who: str | None = "fudong",
    path: str = "/studies",
    content_type: str = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
    params: dict[str, str] | None = None,
) -> httpx.Response:
    headers = {"Content-Type": content_type}
    if who is not None:
        headers["Authorization"] = f"Bearer {web.tokens[who]}"
    return httpx.post(f"{web.url}/dicomweb{path}", content=body, headers=headers, params=params, timeout=30)


def new_study(seed: int, slices: int = 2) -> list[pydicom.Dataset]:
    """A study nobody has sent yet, each slice a Part-10 file as a sender would read it from
    disk: a preamble (pydicom writes 'DICM' only then) and a file meta that matches it."""
    datasets = make_study(seed, "李^四", date="20250407", slices=slices)
    for ds in datasets:
        ds.preamble = b"\0" * 128
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return datasets


def stored_uids(web: Web) -> set[str]:
    return {instance.sop_instance_uid for instance in all_instances(web.fixture.services)}


def spooled_files(web: Web) -> list[str]:
    incoming = web.fixture.settings.incoming_path
    return [path.name for path in incoming.glob("rx-stow-*")] if incoming.exists() else []


def failures(answer: dict[str, Any]) -> list[tuple[int, str]]:
    return [
        (item[FAILURE_REASON]["Value"][0], item[COMMENT]["Value"][0])
        for item in answer.get(FAILED, {}).get("Value", [])
    ]


def referenced(answer: dict[str, Any]) -> list[str]:
    return [item[SOP_INSTANCE]["Value"][0] for item in answer.get(REFERENCED, {}).get("Value", [])]


# ---------------------------------------------------------------- storing


def test_stored_instances_are_found_kept_byte_for_byte_and_become_stable(web: Web, tmp_path: Path) -> None:
    study = new_study(301, slices=3)
    answer = web.client("fudong").store_instances(study)
    uid = study[0].StudyInstanceUID
    assert "FailedSOPSequence" not in answer
    assert answer.RetrieveURL.endswith(f"/dicomweb/studies/{uid}")
    items = {item.ReferencedSOPInstanceUID: item for item in answer.ReferencedSOPSequence}
    assert set(items) == {ds.SOPInstanceUID for ds in study}
    first = items[study[0].SOPInstanceUID]
    assert first.ReferencedSOPClassUID == study[0].SOPClassUID
    assert first.RetrieveURL.endswith(
        f"/studies/{uid}/series/{study[0].SeriesInstanceUID}/instances/{study[0].SOPInstanceUID}"
    )

    # QIDO finds them, under the site of the token.
    found = web.client("fudong").search_for_instances(uid)
    assert {i["00080018"]["Value"][0] for i in found} == set(items)
    assert web.client("anfeng").search_for_studies(search_filters={"StudyInstanceUID": uid}) == []
    # What is stored is what was sent: the data set after group 0002, byte for byte.
    services = web.fixture.services
    kept = {i.sop_instance_uid: i for i in all_instances(services)}
    for ds in study:
        sent = tmp_path / f"{ds.SOPInstanceUID}.dcm"
        sent.write_bytes(part10(ds))
        assert stored_dataset_sha256(services, kept[ds.SOPInstanceUID]) == file_dataset_sha256(sent)
    assert spooled_files(web) == []

    # The study flows on exactly like a C-STORE one: received, then stable with its AI job.
    received = web.fixture.changes(events.STUDY_RECEIVED)
    assert [c.site_id for c in received if c.study_uid == uid] == [web.fixture.site_id]
    assert uid in mark_stable_studies(services.sessions, timedelta(seconds=0), now=utcnow() + timedelta(seconds=1))
    assert [c.study_uid for c in web.fixture.changes(events.STUDY_STABLE)].count(uid) == 1
    with transaction(services.sessions) as session:
        assert session.scalar(select(Study.num_instances).where(Study.study_uid == uid)) == 3
        assert any(job.kind == events.JOB_AI_PRESCREEN for job in session.scalars(select(Job)))


def test_resending_is_harmless_and_a_conflict_is_reported(web: Web) -> None:
    study = new_study(302, slices=1)
    client = web.client("fudong")
    client.store_instances(study)
    again = client.store_instances(study)  # duplicate: accepted again, stored once
    assert [item.ReferencedSOPInstanceUID for item in again.ReferencedSOPSequence] == [study[0].SOPInstanceUID]
    assert len(all_instances(web.fixture.services, study[0].SOPInstanceUID)) == 1
    assert len(web.fixture.changes(events.INSTANCE_DUPLICATE)) == 1

    corrected = copy.deepcopy(study[0])  # same pixels, corrected header: a new version, with a warning
    corrected.StudyDescription = "Abdomen, corrected"
    answer = post(web, related(part10(corrected)))
    assert answer.status_code == 202, answer.text
    item = answer.json()[REFERENCED]["Value"][0]
    assert item[WARNING_REASON]["Value"] == [0xB001]
    assert [i.version for i in all_instances(web.fixture.services, corrected.SOPInstanceUID)] == [1, 2]

    conflicting = copy.deepcopy(study[0])  # same UID, other pixels: not stored, first copy kept
    pixels = bytearray(conflicting.PixelData)
    pixels[0] ^= 0xFF
    conflicting.PixelData = bytes(pixels)
    answer = post(web, related(part10(conflicting)))
    assert answer.status_code == 409, answer.text
    [(code, comment)] = failures(answer.json())
    assert code == 0x0111 and comment.startswith("part 1: SOP Instance UID … was received before with other pixel")
    assert [i.version for i in all_instances(web.fixture.services, corrected.SOPInstanceUID)] == [1, 2]
    with transaction(web.fixture.services.sessions) as session:
        assert [q.reason_code for q in session.scalars(select(Quarantine))] == ["pixel-conflict"]


def test_study_in_the_path_must_match_each_instance(web: Web) -> None:
    mine, other = new_study(303, slices=1), new_study(304, slices=1)
    uid = mine[0].StudyInstanceUID
    answer = post(web, related(part10(mine[0]), part10(other[0])), path=f"/studies/{uid}")
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body[RETRIEVE_URL]["Value"] == [f"{web.url}/dicomweb/studies/{uid}"]
    assert referenced(body) == [mine[0].SOPInstanceUID]
    [(code, comment)] = failures(body)
    assert code == 0xA901 and comment == "part 2: instance belongs to study …, not to … named in the URL"
    assert other[0].SOPInstanceUID not in stored_uids(web)
    # Only mismatches: the library sees 409 as an error.
    with pytest.raises(HTTPError) as refused:
        web.client("fudong").store_instances(other, study_instance_uid=uid)
    assert refused.value.response.status_code == 409
    assert other[0].SOPInstanceUID not in stored_uids(web)


def test_deflated_transfer_syntax_is_refused_and_nothing_kept(web: Web) -> None:
    ds = new_study(305, slices=1)[0]
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    answer = post(web, related(part10(ds)))
    assert answer.status_code == 409, answer.text
    [(code, comment)] = failures(answer.json())
    assert code == 0xC122 and "Deflated" in comment
    assert ds.SOPInstanceUID not in stored_uids(web)
    with transaction(web.fixture.services.sessions) as session:
        assert session.scalars(select(Quarantine)).all() == []
    assert spooled_files(web) == []


# ---------------------------------------------------------------- bad bodies


def test_a_part_that_is_not_dicom(web: Web) -> None:
    good = new_study(306, slices=1)[0]
    answer = post(web, related(part10(good), b"this is not DICOM at all"))
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert referenced(body) == [good.SOPInstanceUID]
    [(code, comment)] = failures(body)
    assert code == 0xC000 and comment.startswith("part 2: not a DICOM Part-10 file")

    # A part declared as another media type refuses the whole request: nothing is stored.
    later = new_study(307, slices=1)[0]
    body_with_text = (
        f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + part10(later)
        + f"\r\n--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nhello\r\n--{BOUNDARY}--\r\n".encode()
    )
    refused = post(web, body_with_text)
    assert refused.status_code == 415
    assert "part 2 has Content-Type 'text/plain'" in refused.json()["detail"]
    refused = post(
        web, related(part10(later)), content_type=f"multipart/related; type=application/dicom+json; boundary={BOUNDARY}"
    )
    assert refused.status_code == 415
    assert later.SOPInstanceUID not in stored_uids(web)
    assert spooled_files(web) == []


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("cut-off", "ends before its closing boundary (part 3 is incomplete)"),
        ("wrong-boundary", "malformed multipart/related body"),
        ("no-parts", "has no parts"),
        ("not-multipart", "Content-Type must be multipart/related"),
        ("no-boundary", "needs a boundary"),
    ],
)
def test_a_broken_body_stores_nothing(web: Web, case: str, message: str) -> None:
    study = new_study(308, slices=3)
    whole = related(*(part10(ds) for ds in study))
    content_type = f'multipart/related; type="application/dicom"; boundary="{BOUNDARY}"'  # quoted works too
    body = {
        # Two complete parts, then the third breaks off: the complete ones are not kept either.
        "cut-off": whole[: len(whole) - len(part10(study[2])) // 2],
        "wrong-boundary": whole.replace(BOUNDARY.encode(), b"another-boundary"),
        "no-parts": f"--{BOUNDARY}--\r\n".encode(),
        "not-multipart": part10(study[0]),
        "no-boundary": whole,
    }[case]
    if case == "not-multipart":
        content_type = "application/dicom"
    elif case == "no-boundary":
        content_type = 'multipart/related; type="application/dicom"'
    answer = post(web, body, content_type=content_type)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["detail"]
    assert stored_uids(web).isdisjoint(ds.SOPInstanceUID for ds in study)
    assert spooled_files(web) == []


def test_size_and_part_caps(web: Web) -> None:
    settings = web.fixture.services.settings
    study = new_study(309, slices=3)
    body = related(*(part10(ds) for ds in study))
    settings.stow_max_bytes = len(body) - 1
    declared = post(web, body)
    assert declared.status_code == 413 and "stow_max_bytes" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap is counted while reading
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    streamed = post(web, chunks())
    assert streamed.status_code == 413
    settings.stow_max_bytes = len(body) * 2
    settings.stow_max_parts = 2
    too_many = post(web, body)
    assert too_many.status_code == 413 and "more than 2 parts" in too_many.json()["detail"]
    assert stored_uids(web).isdisjoint(ds.SOPInstanceUID for ds in study)
    assert spooled_files(web) == []


# ---------------------------------------------------------------- who may store


def test_who_may_store(web: Web) -> None:
    with transaction(web.fixture.services.sessions) as session:
        user = add_user(session, username="qa", role="qa", consortium="Dongtai")
        web.tokens["qa"] = create_token(session, user)[1]
    ds = new_study(310, slices=1)[0]
    body = related(part10(ds))
    assert post(web, body, who=None).status_code == 401
    for role in ("reader", "qa"):
        refused = post(web, body, who=role)
        assert refused.status_code == 403 and "may not store" in refused.json()["detail"], role
    assert post(web, body, who="fudong", params={"site": "Anfeng Health Centre"}).status_code == 403
    missing = post(web, body, who="admin")
    assert missing.status_code == 400 and "?site=" in missing.json()["detail"]
    assert post(web, body, who="admin", params={"site": "No Such Centre"}).status_code == 403
    assert ds.SOPInstanceUID not in stored_uids(web)

    # An admin stores for a site he administers, named by name or id; the study is that site's.
    answer = web.client("admin").store_instances([ds], additional_params={"site": "Anfeng Health Centre"})
    assert [item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence] == [ds.SOPInstanceUID]
    found = web.client("anfeng").search_for_studies(search_filters={"StudyInstanceUID": ds.StudyInstanceUID})
    assert len(found) == 1
    assert web.client("fudong").search_for_studies(search_filters={"StudyInstanceUID": ds.StudyInstanceUID}) == []


def test_each_study_of_a_request_is_audited_once(web: Web) -> None:
    first, second = new_study(311, slices=2), new_study(312, slices=1)
    garbage = b"not DICOM"
    answer = post(web, related(*(part10(ds) for ds in first + second), garbage))
    assert answer.status_code == 202
    assert answer.json()[RETRIEVE_URL] == {"vr": "UR"}  # two studies: no single study URL
    with transaction(web.fixture.services.sessions) as session:
        records = session.scalars(select(AccessRecord).where(AccessRecord.action == "store")).all()
    by_study = {r.study_uid: r for r in records}
    assert len(records) == 3 and set(by_study) == {first[0].StudyInstanceUID, second[0].StudyInstanceUID, None}
    assert by_study[first[0].StudyInstanceUID].detail["stored"] == 2
    assert by_study[first[0].StudyInstanceUID].patient_id == first[0].PatientID
    assert by_study[None].outcome == "failure" and by_study[None].detail["failure_reasons"] == ["0xC000"]
    assert {(r.username, r.role, r.site_id, r.source) for r in records} == {
        ("fudong", "site", web.fixture.site_id, "127.0.0.1")
    }


def test_site_charset_is_assumed_for_data_sets_that_declare_none(web: Web) -> None:
    """Fudong's CT AE is configured GB18030 (its DR AE declares none): a data set without
    (0008,0005) is read as GB18030, as the same clinic's C-STORE would be."""
    ds = new_study(313, slices=1)[0]
    ds.SpecificCharacterSet = "GB18030"
    ds.PatientName = "张^伟"
    encoded = part10(ds)
    # Drop (0008,0005) from the bytes, as a modality that never declares its charset sends them.
    element = encoded.index(b"\x08\x00\x05\x00CS")
    length = int.from_bytes(encoded[element + 6 : element + 8], "little")
    sent = encoded[:element] + encoded[element + 8 + length :]
    assert "张^伟".encode("gb18030") in sent and b"GB18030" not in sent
    assert post(web, related(sent)).status_code == 200
    found = web.client("fudong").search_for_studies(search_filters={"StudyInstanceUID": ds.StudyInstanceUID})
    assert found[0]["00100010"]["Value"][0]["Alphabetic"] == "张^伟"


# ---------------------------------------------------------------- the store down


@pytest.mark.parametrize("backend", ["postgres-s3"], indirect=True)
def test_store_down_is_503_with_retry_after_and_nothing_half_stored(web: Web, moto_server: MotoServer) -> None:
    study = new_study(314, slices=2)
    body = related(*(part10(ds) for ds in study))
    moto_server.freeze()
    try:
        started = time.monotonic()
        answer = post(web, body)
        elapsed = time.monotonic() - started
    finally:
        moto_server.thaw()
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "30"
    assert [code for code, _ in failures(answer.json())] == [0xA700, 0xA700]
    assert "not attempted" in failures(answer.json())[1][1]  # the second did not wait for the same timeout
    assert elapsed < 10
    assert stored_uids(web).isdisjoint(ds.SOPInstanceUID for ds in study)
    # Once the store is back, the same request stores both.
    assert post(web, body).status_code == 200
    assert {ds.SOPInstanceUID for ds in study} <= stored_uids(web)


def test_concurrent_uploads_of_one_study(web: Web) -> None:
    """Two senders storing halves of one study at once: both answered 200, one study of 4."""
    study = new_study(315, slices=4)
    answers: list[int] = []

    def send(half: list[pydicom.Dataset]) -> None:
        answers.append(post(web, related(*(part10(ds) for ds in half))).status_code)

    threads = [threading.Thread(target=send, args=(study[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == [200, 200]
    with transaction(web.fixture.services.sessions) as session:
        assert session.scalar(select(Study.num_instances).where(Study.study_uid == study[0].StudyInstanceUID)) == 4
        assert len(session.scalars(select(Instance)).all()) == 5 + 4
