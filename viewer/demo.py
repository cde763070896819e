"""``yunying demo``: a demo consortium modelled on a real county centre, and demo studies
pushed into the running service by real C-STORE from the townships' AE titles."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs.dimse.store_scu import AssociationRefused, send_files
from pacs.identity.passwords import login_candidate, password_accepted, set_password
from pacs.identity.sites import add_site, add_site_ae
from pacs.identity.users import add_user, create_token
from pacs.index.models import Role, Site, User
from pacs.patients import NATIONAL_ID_ISSUER
from pacs.settings import Settings
from reading.admin import add_reader, parse_window, set_roster
from reading.models import Reader

CONSORTIUM = "Dongtai County Medical Consortium"


@dataclass(frozen=True)
class DemoSite:
    name: str
    tier: str
    aes: tuple[tuple[str, str | None], ...]  # (AE title, assumed charset)
    return_ae: str
    return_port: int
    contact: str


DEMO_SITES = (
    DemoSite(
        "Dongtai People's Hospital",
        "county",
        (("DONGTAI_PACS", None),),
        "DONGTAI_PACS",
        11120,
        "Radiology office, 0515-8521xxxx",
    ),
    DemoSite(
        "Fudong Health Centre",
        "township",
        (("FUDONG_CT", "GB18030"), ("FUDONG_DR", "GB18030")),
        "FUDONG_PACS",
        11121,
        "Imaging room, Dr. Zhou",
    ),
    DemoSite("Anfeng Health Centre", "township", (("ANFENG_CT", None),), "ANFENG_PACS", 11122, "Imaging room"),
    DemoSite("Touzao Health Centre", "township", (("TOUZAO_DR", None),), "TOUZAO_WS", 11123, "Imaging room"),
    DemoSite("Xinjie Village Clinic", "village", (("XINJIE_DR", None),), "XINJIE_WS", 11124, "Village doctor"),
    # Private hospitals sit at the tier that matches their capability.
    DemoSite(
        "Dongtai Renji Hospital (private)", "township", (("RENJI_CT", "GB18030"),), "RENJI_PACS", 11125, "Radiology"
    ),
)


def seed_consortium(session: Session) -> list[str]:
    """Create the demo sites and their AEs (all allowed from 127.0.0.1); returns what was new."""
    created = []
    for demo in DEMO_SITES:
        site = session.scalar(select(Site).where(Site.name == demo.name))
        if site is None:
            site = add_site(
                session,
                consortium=CONSORTIUM,
                name=demo.name,
                tier=demo.tier,
                contact=demo.contact,
                return_ae_title=demo.return_ae,
                return_host="127.0.0.1",
                return_port=demo.return_port,
                actor="demo",
            )
            for title, charset in demo.aes:
                add_site_ae(
                    session,
                    site=site,
                    ae_title=title,
                    allowed_address="127.0.0.1",
                    assumed_charset=charset,
                    actor="demo",
                )
            created.append(demo.name)
    return created


# Two readers on duty around the clock: a county radiologist and a provincial expert.
DEMO_READERS = (
    ("demo-li", "李医生", "county", ["CT", "DX", "CR"]),
    ("demo-chen", "陈教授", "provincial", ["CT", "DX", "CR"]),
)


def seed_readers(session: Session) -> list[str]:
    """The demo readers, on duty all day; returns the new ones."""
    created = []
    for username, name, tier, modalities in DEMO_READERS:
        user = session.scalar(select(User).where(User.username == username))
        if user is not None and session.scalar(select(Reader.id).where(Reader.user_id == user.id)) is not None:
            continue
        add_reader(
            session,
            username=username,
            consortium=CONSORTIUM,
            tier=tier,
            modalities=modalities,
            display_name=name,
            actor="demo",
        )
        set_roster(session, username, [parse_window("daily 00:00-12:00"), parse_window("daily 12:00-00:00")])
        created.append(f"{name} ({tier})")
    return created


# 王桂英's resident identity card number (a made-up one, with a valid check character).
DEMO_RESIDENT_ID = "32098119550304262X"

DEMO_ADMIN = "demo-admin"
DEMO_SITE_ACCOUNT = "demo-fudong"
DEMO_TOKEN_SITE = "Fudong Health Centre"


def issue_demo_tokens(session: Session, home: Path) -> dict[str, Path]:
    """A consortium admin, a Fudong Health Centre service account and the county reader 李医生,
    each with a fresh token written to ``home/demo-*-token`` (mode 0600)."""
    accounts = {
        "demo-admin-token": (DEMO_ADMIN, {"role": Role.ADMIN, "consortium": CONSORTIUM}),
        "demo-site-token": (DEMO_SITE_ACCOUNT, {"role": Role.SITE, "site": DEMO_TOKEN_SITE, "is_service": True}),
        "demo-reader-token": ("demo-li", {}),  # created by seed_readers
    }
    written = {}
    for filename, (username, options) in accounts.items():
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            user = add_user(session, username=username, actor="demo", **options)  # type: ignore[arg-type]
        _, token = create_token(session, user, name="make demo", days=30, actor="demo")
        path = home / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
        os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT
        written[username] = path
    return written


@dataclass(frozen=True)
class DemoLogin:
    login: str
    password: str
    who: str  # what the login shows of the web application
    options: dict[str, str]  # how add_user makes it when it does not exist yet


# Browser logins of `make demo`, one per role. Their passwords are public (README): production
# refuses to start while any of them still opens a session (``demo_passwords_in_use``), and
# `yunying demo` itself refuses to run in production mode.
DEMO_LOGINS = (
    DemoLogin("demo-li", "reader-demo-2026", "李医生, county radiologist: worklist, viewer, reports", {}),
    DemoLogin(
        "demo-fudong-tech",
        "site-demo-2026",
        "周技师, CT technologist of Fudong Health Centre: the site portal",
        {"role": Role.SITE, "site": DEMO_TOKEN_SITE, "display_name": "周技师"},
    ),
    DemoLogin(
        "demo-qa",
        "qa-demo-2026",
        "孙老师, QA officer of the consortium: turnaround, breaches, peer review, audit",
        {"role": Role.QA, "consortium": CONSORTIUM, "display_name": "孙老师"},
    ),
    DemoLogin(
        "demo-admin",
        "admin-demo-2026",
        "the consortium's administrator: sites, AEs, readers, rules",
        {"role": Role.ADMIN, "consortium": CONSORTIUM},
    ),
)


def seed_demo_logins(session: Session) -> list[DemoLogin]:
    """The demo logins (after ``seed_readers``, which makes demo-li), each given its demo
    password unless it has one already (a re-run logs nobody out); returns them all."""
    for demo in DEMO_LOGINS:
        user = session.scalar(select(User).where(User.username == demo.login))
        if user is None:
            user = add_user(session, username=demo.login, actor="demo", **demo.options)  # type: ignore[arg-type]
        if user.password_hash is None:
            set_password(session, user, demo.password, actor="demo")
    return list(DEMO_LOGINS)


def demo_passwords_in_use(session: Session) -> list[str]:
    """The demo logins whose public demo password still opens a session (production refuses
    to start while there is one)."""
    return [
        demo.login for demo in DEMO_LOGINS if password_accepted(login_candidate(session, demo.login), demo.password)
    ]


@dataclass(frozen=True)
class DemoStudy:
    calling_ae: str
    label: str
    folder: str


def generate_demo_studies(root: Path, *, ct_slices: int = 40) -> list[DemoStudy]:
    """Write the demo studies under ``root`` once (seeded, so re-runs reuse them)."""
    from datasets import lesions, synthetic

    # 王桂英 is FD0071 at Fudong and DT0309112 at the county hospital; both record her resident ID
    # card number (Other Patient IDs, issuer CN-RIC): the county's study is her prior (issue F).
    wang_at = {
        site_id: synthetic.PatientSpec(
            site_id, "王^桂英", "19550304", "F", other_ids=((DEMO_RESIDENT_ID, NATIONAL_ID_ISSUER),)
        )
        for site_id in ("FD0071", "DT0309112")
    }
    plans = [
        (
            "FUDONG_CT",
            "CT abdomen, 71-year-old, Fudong",
            "fudong-ct-abdomen-id",
            lambda: synthetic.ct_series(
                "abdomen",
                ct_slices,
                seed=71,
                study=synthetic.StudySpec(
                    institution_name="Fudong Health Centre",
                    station_name="FUDONG_CT",
                    accession_number="FD20261123001",
                    referring_physician="周^建国",
                    study_description="CT ABDOMEN PLAIN",
                    charset="GB18030",
                ),
                patient=wang_at["FD0071"],
            ),
        ),
        (
            "DONGTAI_PACS",
            "CT abdomen a year earlier, the same patient (another patient ID, the same ID card), county hospital",
            "dongtai-ct-abdomen-prior",
            lambda: synthetic.ct_series(
                "abdomen",
                max(10, ct_slices // 2),
                seed=70,
                study=synthetic.StudySpec(
                    institution_name="Dongtai People's Hospital",
                    station_name="DONGTAI_CT",
                    accession_number="DT20251015042",
                    referring_physician="陈^立",
                    study_description="CT ABDOMEN PLAIN",
                    study_date="20251015",
                ),
                patient=wang_at["DT0309112"],
            ),
        ),
        (
            "FUDONG_DR",
            "DX chest PA, Fudong",
            "fudong-dx-chest",
            lambda: [synthetic.radiograph("DX", seed=12, size=1024)],
        ),
        (
            "ANFENG_CT",
            "CT head with a haemorrhage (phantom), Anfeng",
            "anfeng-ct-head-bleed",
            lambda: lesions.head_ct(seed=23, haemorrhage=True, slices=ct_slices).slices,
        ),
        (
            "XINJIE_DR",
            "CR chest with a pneumothorax (phantom), Xinjie village clinic",
            "xinjie-cr-chest-ptx",
            lambda: [lesions.chest_film(seed=34, labels=["pneumothorax"], size=1024, modality="CR").dataset],
        ),
        (
            "RENJI_CT",
            "CT abdomen, GBK name without a character set, Renji",
            "renji-ct-gbk",
            lambda: synthetic.ct_series(
                "abdomen",
                max(10, ct_slices // 2),
                seed=45,
                study=synthetic.StudySpec(
                    institution_name="Dongtai Renji Hospital",
                    station_name="RENJI_CT",
                    accession_number="RJ20261123007",
                    referring_physician="李^明",
                    study_description="CT ABDOMEN",
                    charset="GBK-undeclared",
                ),
            ),
        ),
    ]
    studies = []
    for calling_ae, label, folder, build in plans:
        target = root / folder
        if not target.exists() or not any(target.glob("*.dcm")):
            partial = root / f".{folder}.partial"
            partial.mkdir(parents=True, exist_ok=True)
            synthetic.write_series(build(), partial)
            partial.rename(target)
        studies.append(DemoStudy(calling_ae, label, folder))
    return studies


def push_demo_studies(settings: Settings, root: Path, studies: list[DemoStudy], console: Console) -> int:
    """C-STORE each demo study from its site's AE title; returns the number of failed instances."""
    failures = 0
    port = settings.dicom_port
    for study in studies:
        files = sorted((root / study.folder).glob("*.dcm"))
        try:
            results = send_files(
                files, host="127.0.0.1", port=port, called_ae=settings.ae_title, calling_ae=study.calling_ae
            )
        except AssociationRefused as exc:
            console.print(f"[red]{study.label}: {exc}[/red]")
            failures += len(files)
            continue
        ok = sum(result.ok for result in results)
        failures += len(results) - ok
        colour = "green" if ok == len(results) else "red"
        console.print(
            f"[{colour}]{study.calling_ae:>10} → {settings.ae_title}: {study.label}: "
            f"{ok}/{len(results)} instances Success[/{colour}]"
        )
    return failures
