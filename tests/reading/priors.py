"""Studies of one patient as each site of a consortium identifies her, sent by STOW-RS: the
test data of the priors tests (tests/reading/test_priors.py, tests/viewer/test_priors_page.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pydicom

from datasets import synthetic
from pacs.patients import NATIONAL_ID_ISSUER, check_character

BOUNDARY = "prior-boundary-7"
# A resident ID of a woman born 1955-03-04 in Dongtai (320981), with its check character.
CARD = "32098119550304262" + check_character("32098119550304262")
OTHER_CARD = "32098119550304264" + check_character("32098119550304264")


def patient(
    patient_id: str, name: str = "王^桂英", card: str | None = CARD, issuer: str = NATIONAL_ID_ISSUER
) -> synthetic.PatientSpec:
    return synthetic.PatientSpec(patient_id, name, "19550304", "F", other_ids=((card, issuer),) if card else ())


def study_files(
    folder: Path,
    who: synthetic.PatientSpec,
    *,
    seed: int,
    date: str = "20260101",
    site: str = "Fudong",
    slices: int = 2,
    size: int = 32,
    drop: tuple[str, ...] = (),
) -> list[Path]:
    """The Part-10 files of a head CT of ``who`` (less the attributes named in ``drop``)."""
    built = synthetic.ct_series(
        "head",
        slices,
        seed=seed,
        rows=size,
        cols=size,
        patient=who,
        study=synthetic.StudySpec(
            institution_name=site,
            station_name="CT",
            accession_number=f"A{seed}",
            referring_physician="周^建国",
            study_description=f"CT HEAD {site}",
            study_date=date,
        ),
    )
    for ds in built:
        for keyword in drop:
            delattr(ds, keyword)
    return synthetic.write_series(built, folder / f"s{seed}")


def stow_body(
    folder: Path,
    who: synthetic.PatientSpec,
    *,
    seed: int,
    date: str,
    site: str,
    slices: int = 2,
    size: int = 32,
    drop: tuple[str, ...] = (),
) -> tuple[bytes, str]:
    """A STOW-RS body of a head CT of ``who`` (less the attributes named in ``drop``) and its
    Study Instance UID."""
    paths = study_files(folder, who, seed=seed, date=date, site=site, slices=slices, size=size, drop=drop)
    parts = b"".join(
        f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + path.read_bytes() + b"\r\n"
        for path in paths
    )
    uid = str(pydicom.dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)
    return parts + f"--{BOUNDARY}--\r\n".encode(), uid


def stow(url: str, token: str, sent: tuple[bytes, str]) -> str:
    """POST the body to ``/dicomweb/studies`` as a site user (the study is filed under his site)."""
    body, uid = sent
    answer = httpx.post(
        f"{url}/dicomweb/studies",
        content=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
        },
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return uid
