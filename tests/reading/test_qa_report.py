"""Workload, AI performance and the monthly quality report (issue E) against the hand-worked
history of qa_history.py + qa_month.py — on SQLite and PostgreSQL — through the API (a real
server) and the CLI; the PDF rendered to PNG pages and its per-site table read back and checked
against the workload and turnaround CSVs of the same month."""

from __future__ import annotations

import csv
import io
import re
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from pacs.identity.sites import add_site
from pacs.identity.users import add_user, create_token, find_user
from pacs.index.db import transaction
from pacs.index.models import Change
from pacs.service import Services
from reading.models import Priority
from reading.qa.ai import PriorityChange, Raise, ai_prioritised
from reading.qa.monthly import month_scope, monthly_figures
from reading.qa.queries import ai_figures, raises_of, workload_lines
from reading.qa.report import build_report_pdf, prepare_report
from reading.qa.service import month_range
from reading.worklist.routing import StudyFacts, route
from tests.conftest import BACKENDS, free_port, receiver_env, yunying
from tests.reading.qa_history import CONSORTIUM, NOW, History, at, build_history
from tests.reading.qa_month import ANFENG, add_october

on_both = pytest.mark.parametrize("backend", BACKENDS)
# The known October fits on two A4 pages (summary, volume, turnaround; breaches, escalation,
# AI, per site).
PAGES = 2


def _october(services: Services) -> History:
    with transaction(services.sessions) as session:
        history = build_history(session)
        add_october(session, history)
    return history


def _queued(task_id: int, priority: str, reason: str = "", escalated_from: int | None = None) -> PriorityChange:
    payload = {"task_id": task_id, "priority": priority, "reason": reason, "escalated_from": escalated_from}
    return PriorityChange("task.queued", "router", payload)


def test_ai_prioritised_tasks_are_read_from_the_routers_reason_and_later_raises() -> None:
    # The reasons come from the real router, so a change of its wording breaks this test.
    facts = StudyFacts(
        study_uid="1.2.3",
        consortium_id=1,
        site_id=1,
        site_name="Fudong",
        site_tier="township",
        modality="CT",
        body_part="HEAD",
        ready_at=NOW,
        ai_priority=Priority.STAT,
        ai_may_raise=True,
    )

    def reason(study: StudyFacts) -> str:
        return route(study, [], [], [], timezone="Asia/Shanghai", now=NOW).explanation

    alone = reason(facts)
    assert "priority stat from the AI pre-screen;" in alone
    with_order = reason(replace(facts, order_priority=Priority.STAT))
    advisory = reason(replace(facts, ai_may_raise=False))
    to_urgent = reason(replace(facts, ai_priority=Priority.URGENT, requested_priority=Priority.ROUTINE))
    found = ai_prioritised(
        [
            _queued(1, "stat", alone),
            _queued(2, "stat", with_order),  # the order asked for stat too: the AI raised nothing
            _queued(3, "routine", advisory),  # an unvalidated model only advises
            _queued(4, "routine"),
            PriorityChange("task.route_updated", "router", {"task_id": 4, "priority": "urgent", "ai_flags": 1}),
            _queued(5, "routine"),
            PriorityChange(
                "task.route_updated", "fudong-ris", {"task_id": 5, "priority": "urgent"}
            ),  # the site's request
            _queued(6, "stat", "escalated from county task 1: query bleed", escalated_from=1),
            _queued(7, "urgent", to_urgent),
        ]
    )
    assert found == {
        1: Raise(1, "stat", "urgent", exact=False),  # before stat, at least urgent: a lower bound
        4: Raise(4, "urgent", "routine", exact=True),
        6: Raise(6, "stat", "urgent", exact=False),  # the provincial task keeps its county priority
        7: Raise(7, "urgent", "routine", exact=True),
    }


@on_both
def test_raises_are_found_in_the_change_log_on_both_databases(
    make_services: Callable[..., Services], backend: str
) -> None:
    # The SQL narrows the queueings by their JSON payload (reason, escalated_from): checked on
    # SQLite's JSON text and PostgreSQL's jsonb alike.
    services = make_services(backend)
    alone = "routed to county: township site A; priority stat from the AI pre-screen; SLA 30 min"
    log = [
        ("task.queued", "08:00", "1.1", "router", {"task_id": 1, "priority": "stat", "reason": alone}),
        ("task.queued", "08:30", "1.1", "reader:3", {"task_id": 2, "priority": "stat", "escalated_from": 1}),
        ("task.queued", "09:00", "1.2", "router", {"task_id": 3, "priority": "routine", "reason": "priority routine"}),
        ("task.route_updated", "09:05", "1.2", "router", {"task_id": 3, "priority": "urgent", "ai_flags": 1}),
        ("task.queued", "10:00", "1.3", "router", {"task_id": 4, "priority": "routine", "escalated_from": None}),
        ("task.route_updated", "10:05", "1.3", "fudong-ris", {"task_id": 4, "priority": "urgent"}),
        ("task.queued", "11:00", "1.4", "router", {"task_id": 5, "priority": "stat", "reason": "from the order"}),
    ]
    with transaction(services.sessions) as session:
        for kind, hhmm, uid, actor, payload in log:
            session.add(Change(kind=kind, at=at(7, hhmm), study_uid=uid, actor=actor, payload=payload))
        session.flush()
        rows = [
            SimpleNamespace(task_id=n, queued_at=at(7, hhmm))
            for n, hhmm in enumerate(("08:00", "08:30", "09:00", "10:00", "11:00"), 1)
        ]
        found = raises_of(session, rows)  # type: ignore[arg-type]
    assert found == {
        1: Raise(1, "stat", "urgent", exact=False),
        2: Raise(2, "stat", "urgent", exact=False),
        3: Raise(3, "urgent", "routine", exact=True),
    }


@on_both
def test_workload_counts_signed_reads_per_tier_in_the_local_month(
    make_services: Callable[..., Services], backend: str
) -> None:
    services = make_services(backend)
    _october(services)
    with transaction(services.sessions) as session:
        october = {
            (x.site, x.modality, x.tier): x.as_json() for x in workload_lines(session, None, *month_range("2026-10"))
        }
        november = workload_lines(session, None, *month_range("2026-11"))
    # Fudong county: 1 routine, 2 stat, 8 stat, 9 urgent (raised), 11 stat; 6 and 7 are open.
    fudong = october[("QA Fudong", "CT", "county")]
    assert (fudong["signed"], fudong["stat"], fudong["urgent"], fudong["routine"], fudong["escalated"]) == (
        5,
        3,
        1,
        1,
        0,
    )
    # Xinjie: 3 signed at the county; 4 escalated (not a read) and reported by the province as 5.
    assert october[("QA Xinjie", "DX", "county")] == {
        "consortium": CONSORTIUM,
        "site": "QA Xinjie",
        "site_tier": "village",
        "modality": "DX",
        "tier": "county",
        "signed": 1,
        "stat": 0,
        "urgent": 1,
        "routine": 0,
        "escalated": 1,
    }
    assert october[("QA Xinjie", "DX", "provincial")]["signed"] == 1
    assert october[("QA Xinjie", "DX", "provincial")]["escalated"] == 0
    assert october[(ANFENG, "CT", "county")]["signed"] == 1
    assert len(october) == 4 and november == []


@on_both
def test_ai_performance_per_model_and_site(make_services: Callable[..., Services], backend: str) -> None:
    services = make_services(backend)
    _october(services)
    with transaction(services.sessions) as session:
        lines = {(x.model, x.site): x.as_json() for x in ai_figures(session, None, *month_range("2026-10"))}
    fudong = lines[("head-ct-ich", "QA Fudong")]
    # Screened 2, 6, 8, 9, 11 (7 is November locally); positive 8, 9, 11.
    assert (fudong["screened"], fudong["flagged"], fudong["flagged_rate"]) == (5, 3, 0.6)
    # 8: two agree; 9: one disagrees; 2 (a negative): one agrees.
    assert (fudong["reviewed"], fudong["opinions"], fudong["agreed"], fudong["agreement"]) == (3, 4, 3, 0.75)
    lifted = fudong["prioritised"]
    # 8 (stat at routing, waited 5) and 9 (urgent after routing, waited 12); 11 is stat by its order too.
    assert (lifted["tasks"], lifted["claimed"], lifted["wait_p50"]) == (2, 2, 8.5)
    # Peers: other county stat tasks waited 7 (2) and 10 (11): 8.5; urgent ones 70 (3) and 45 (10,
    # raised by its site, not the AI): 57.5. Median of 8.5 and 57.5: 33.
    assert lifted["peer_wait_p50"] == 33.0
    # Before the raise: 8 was at most urgent (57.5 - 5 = 52.5); 9 routine, whose county tasks
    # waited 20 (1) and 10 (4): 15 - 12 = 3. Median 27.75.
    assert (lifted["time_saved_n"], lifted["time_saved_p50"]) == (2, 27.75)
    # No reader gave an opinion: agreement undefined, not 0.
    anfeng = lines[("head-ct-ich", ANFENG)]
    assert (anfeng["screened"], anfeng["flagged_rate"], anfeng["opinions"], anfeng["agreement"]) == (1, 0.0, 0, None)
    assert lines[("image-qc", "QA Fudong")]["agreement"] is None
    chest = lines[("chest-dx-triage", "QA Xinjie")]
    assert (chest["flagged_rate"], chest["agreement"], chest["prioritised"]["tasks"]) == (1.0, 0.5, 0)
    assert chest["prioritised"]["time_saved_p50"] is None


@on_both
def test_monthly_figures_agree_with_the_hand_worked_month(
    make_services: Callable[..., Services], backend: str, tmp_path: Path
) -> None:
    services = make_services(backend)
    _october(services)
    with transaction(services.sessions) as session:
        figures = monthly_figures(session, month_scope(session, None, None, "2026-10", NOW))
    # Studies 1–4, 6, 8–11 arrived in local October (4 and 5 are one study); 7 is November.
    assert (figures.studies, figures.tasks) == (9, 10)
    assert {m: sum(days) for m, days in figures.volume.items()} == {"CT": 7, "DX": 2}
    assert figures.volume["CT"][6] == 2 and figures.volume["CT"][30] == 1  # 10-07 and 10-31 local
    # Judged at NOW (10-31 18:00): 3 and 10 late, 6 open past its deadline; 4 escalated, not judged.
    assert figures.compliance == (6, 9) and [c[:2] for c in figures.causes] == [("claimed", 3)]
    assert figures.escalation == (1, 8)
    sites = {s.site: s for s in figures.sites}
    assert sites["QA Xinjie"].escalation_rate == 0.5 and sites["QA Fudong"].studies == 6
    # Queued → signed, stat: 25 (2), 25 (8), 27 (11) → p50 25, p90 26.6.
    assert figures.reading["stat"] == {"n": 3, "p50": 25.0, "p90": 26.6, "p95": 26.8}
    assert figures.sla == {"stat": 30, "urgent": 60, "routine": 1440}
    # A month with nothing in it still makes a report that says so.
    with transaction(services.sessions) as session:
        empty = prepare_report(session, month_scope(session, None, CONSORTIUM, "2025-01", NOW))
    pdf = tmp_path / "empty.pdf"
    pdf.write_bytes(build_report_pdf(empty))
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "No study arrived this month." in text and "No AI finding this month." in text


# ---------------------------------------------------------------- the PDF read back


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def check_report_pdf(pdf: Path, workload_csv: str, turnaround_csv: str) -> str:
    """Rasterise every page (non-empty PNGs, as many as the PDF says, PAGES of them); read the
    per-site table back and compare it with the CSVs of the same month. Returns the text."""
    assert pdf.read_bytes().startswith(b"%PDF-")
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))  # type: ignore[union-attr]
    subprocess.run(["pdftoppm", "-png", "-r", "50", str(pdf), str(pdf.with_suffix(""))], check=True)
    images = sorted(pdf.parent.glob(f"{pdf.stem}-*.png"))
    assert len(images) == pages == PAGES, (images, pages)
    for image in images:
        data = image.read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5_000, (image, len(data))
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "WenQuanYiZenHei" in fonts and "Helvetica" not in fonts, fonts  # one font, embedded
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    table = text[text.index("Per site") :]
    turnaround = {row["site"]: row for row in _csv(turnaround_csv)}
    reads: dict[str, dict[str, int]] = {}
    for row in _csv(workload_csv):
        site = reads.setdefault(row["site"], {"county": 0, "provincial": 0, "escalated": 0})
        site[row["tier"]] += int(row["signed"])
        site["escalated"] += int(row["escalated"])
    assert set(turnaround) | set(reads) == {"QA Fudong", "QA Xinjie", ANFENG}
    for site in sorted(set(turnaround) | set(reads)):
        line = next(line.strip() for line in table.splitlines() if line.strip().startswith(site))
        _tier, _studies, tasks, met_judged, compliance, report_p50, county, provincial, escalated = line[
            len(site) :
        ].split()
        expected = turnaround[site]
        assert int(tasks) == int(expected["count"])
        assert met_judged == f"{expected['sla_met']}/{int(expected['sla_met']) + int(expected['sla_breached'])}"
        assert compliance == f"{100 * float(expected['sla_compliance']):.1f}%"
        assert report_p50 == expected["report_p50"]
        assert [int(county), int(provincial), int(escalated)] == [
            reads[site]["county"],
            reads[site]["provincial"],
            reads[site]["escalated"],
        ]
    return text


def _sheet(data: bytes) -> list[list[Any]]:
    workbook = load_workbook(io.BytesIO(data))
    return [list(row) for row in workbook.active.iter_rows(values_only=True)]


@on_both
def test_the_api_exports_workload_ai_and_the_monthly_report(
    make_services: Callable[..., Services], backend: str, tmp_path: Path
) -> None:
    from reading.settings import ReadingSettings
    from viewer.serve import EmbeddedService

    services = make_services(backend, http_port=free_port())
    _october(services)
    with transaction(services.sessions) as session:
        add_user(session, username="qa-wang", role="qa", consortium=CONSORTIUM)
        add_site(session, consortium="Another Consortium", name="Elsewhere", tier="township")
        add_user(session, username="other-qa", role="qa", consortium="Another Consortium")
        add_user(session, username="root", role="admin")  # an admin of every consortium
        names = ("qa-wang", "other-qa", "qa-li", "root")
        tokens = {n: create_token(session, find_user(session, n))[1] for n in names}
    # The history is fixed in October; the service's sweeper runs on the wall clock. Left to
    # escalate, it moved the open breached county task (6) to the provincial tier, out of the
    # breach list, depending on when its round ran (seen failing 2026-12-03).
    service = EmbeddedService(services, ReadingSettings(reading_auto_escalate=False))
    service.start()
    base = f"http://127.0.0.1:{services.settings.http_port}/api/qa"

    def get(who: str, path: str, **params: str) -> httpx.Response:
        return httpx.get(f"{base}{path}", params=params, headers={"Authorization": f"Bearer {tokens[who]}"}, timeout=60)

    october = {"from": "2026-10-01", "to": "2026-11-01"}
    try:
        answer = get("qa-wang", "/workload", month="2026-10")
        assert answer.status_code == 200, answer.text
        assert (answer.json()["signed"], answer.json()["escalated"], len(answer.json()["lines"])) == (8, 1, 4)
        workload_csv = get("qa-wang", "/workload", month="2026-10", format="csv").text
        assert (
            workload_csv.splitlines()[0]
            == "consortium,site,site_tier,modality,tier,signed,stat,urgent,routine,escalated"
        )
        assert f"{CONSORTIUM},QA Fudong,township,CT,county,5,3,1,1,0" in workload_csv.splitlines()
        workbook = get("qa-wang", "/workload", month="2026-10", format="xlsx")
        assert workbook.headers["content-type"].startswith("application/vnd.openxmlformats")
        sheet = _sheet(workbook.content)
        assert sheet[0] == workload_csv.splitlines()[0].split(",")
        assert sheet[1] == [CONSORTIUM, "QA Fudong", "township", "CT", "county", 5, 3, 1, 1, 0]  # numbers typed
        assert len(sheet) == len(workload_csv.splitlines())

        turnaround_csv = get("qa-wang", "/turnaround", group_by="site", format="csv", **october).text
        sheet = _sheet(get("qa-wang", "/turnaround", group_by="site", format="xlsx", **october).content)
        rows = list(csv.reader(io.StringIO(turnaround_csv)))
        assert sheet[0] == rows[0] and [r[:5] for r in sheet[1:]] == [
            [r[0], int(r[1]), int(r[2]), int(r[3]), float(r[4])] for r in rows[1:]
        ]
        breaches = _sheet(get("qa-wang", "/breaches", format="xlsx", **october).content)
        assert breaches[0][:3] == ["task_id", "study_uid", "site"] and len(breaches) == 4  # 3, 6 and 10
        assert isinstance(breaches[1][0], int) and isinstance(breaches[1][1], str)

        models = get("qa-wang", "/ai", start="2026-10-01", end="2026-11-01").json()["models"]
        same = get("qa-wang", "/ai", month="2026-10").json()["models"]
        assert models == same == get("qa-wang", "/ai", **october).json()["models"]
        fudong = next(m for m in models if m["model"] == "head-ct-ich" and m["site"] == "QA Fudong")
        assert fudong["agreement"] == 0.75 and fudong["prioritised"]["time_saved_p50"] == 27.75
        assert next(m for m in models if m["site"] == ANFENG)["agreement"] is None

        report = get("qa-wang", "/report", month="2026-10")
        assert report.status_code == 200, report.text
        assert report.headers["content-type"] == "application/pdf"
        assert "quality-report-2026-10.pdf" in report.headers["content-disposition"]
        pdf = tmp_path / "report.pdf"
        pdf.write_bytes(report.content)
        text = check_report_pdf(pdf, workload_csv, turnaround_csv)
        assert "QA Consortium 月度质控报告" in text and ANFENG in text and "head-ct-ich" in text
        assert get("root", "/report", month="2026-10", consortium=CONSORTIUM).status_code == 200

        # Out of scope, wrong role, bad input: the status and a message that says what is wrong.
        other = get("qa-wang", "/workload", month="2026-10", consortium="Another Consortium")
        assert other.status_code == 403 and "your own consortium only" in other.text
        assert get("qa-wang", "/report", month="2026-10", consortium="Nope").status_code == 403
        assert get("other-qa", "/workload", month="2026-10").json()["lines"] == []
        assert get("other-qa", "/ai", month="2026-10").json()["models"] == []
        for path in ("/workload", "/ai", "/report"):
            assert get("qa-li", path, month="2026-10").status_code == 403  # a reader
        bad = get("qa-wang", "/workload", month="October")
        assert bad.status_code == 422 and "month must look like 2026-10" in bad.text
        bad = get("qa-wang", "/report", month="2026-13")
        assert bad.status_code == 422 and "month must look like 2026-10" in bad.text
        assert get("qa-wang", "/workload").status_code == 422  # month is required
        bad = get("qa-wang", "/workload", month="2026-10", format="pdf")
        assert bad.status_code == 422 and "json|csv|xlsx" in bad.text
        assert get("qa-wang", "/turnaround", format="ods").status_code == 422
        bad = get("qa-wang", "/ai", month="2026-10", start="2026-10-01")
        assert bad.status_code == 422 and "not both" in bad.text
        bad = get("qa-wang", "/ai", start="1 Oct")
        assert bad.status_code == 422 and "start must be a date like 2026-10-01" in bad.text
        bad = get("root", "/report", month="2026-10")
        assert bad.status_code == 422 and "name the consortium" in bad.text and CONSORTIUM in bad.text
        assert get("root", "/workload", month="2026-10", consortium="Nope").status_code == 404
    finally:
        service.stop()


def test_the_cli_writes_workload_ai_and_the_report_with_progress(
    make_services: Callable[..., Services], tmp_path: Path
) -> None:
    services = make_services("sqlite-folder")
    _october(services)
    env = receiver_env(tmp_path / "var")
    workload_csv = yunying("qa", "workload", "--month", "2026-10", "--format", "csv", env=env).stdout
    assert workload_csv.splitlines()[1] == f"{CONSORTIUM},QA Fudong,township,CT,county,5,3,1,1,0"
    book = tmp_path / "workload.xlsx"
    yunying("qa", "workload", "--month", "2026-10", "--output", str(book), env=env)  # format from the suffix
    assert _sheet(book.read_bytes())[1][5] == 5
    table = yunying("qa", "workload", "--month", "2026-10", env=env).stdout
    assert "8 read(s) signed in 2026-10" in table
    listed = yunying("qa", "ai", "--month", "2026-10", env=env | {"COLUMNS": "200"}).stdout
    assert "head-ct-ich" in listed and "75% (3/4)" in listed
    assert '"time_saved_p50": 27.75' in yunying("qa", "ai", "--month", "2026-10", "--json", env=env).stdout

    pdf = tmp_path / "cli" / "report.pdf"
    pdf.parent.mkdir()
    done = yunying("qa", "report", "--month", "2026-10", "--output", str(pdf), env=env)
    assert "written to" in done.stdout and "10 task(s)" in done.stdout, done.stdout
    turnaround_csv = yunying("qa", "turnaround", "--group-by", "site", "--month", "2026-10", "--csv", env=env).stdout
    check_report_pdf(pdf, workload_csv, turnaround_csv)

    for args, message in [
        (("qa", "report", "--month", "2026-13", "--output", str(pdf)), "month must look like 2026-10"),
        (("qa", "report", "--month", "2026-10", "--consortium", "Nope", "--output", str(pdf)), "no consortium 'Nope'"),
        (("qa", "workload", "--month", "2026-10", "--format", "xlsx"), "give --output FILE.xlsx"),
        (("qa", "ai", "--month", "2026-10", "--from", "2026-10-01"), "not both"),
    ]:
        bad = yunying(*args, env=env, check=False)
        assert bad.returncode == 1 and message in bad.stdout + bad.stderr, (args, bad.stdout, bad.stderr)
    bad = yunying("qa", "workload", "--month", "2026-10", "--format", "pdf", env=env, check=False)
    assert bad.returncode == 2 and "pdf" in bad.stderr  # typer names the choices
    listed = " ".join(yunying("qa", "--help", env=env).stdout.split())
    assert (
        "workload Reads per site" in listed and "ai AI performance" in listed and "report Write the monthly" in listed
    )
    assert "--consortium" in yunying("qa", "report", "--help", env=env).stdout
