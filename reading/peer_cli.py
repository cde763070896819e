"""``yunying qa peer sample|list|score|rates|queue|close|export``: peer review (RADPEER) from
the command line — for QA staff and the monthly job that samples the reports to review."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs.cli_support import console
from pacs.index.models import Consortium
from pacs.index.types import utcnow
from reading.admin import find_reader
from reading.cli import _run
from reading.errors import NotFound
from reading.qa import peer
from reading.qa.peer_export import as_csv, as_xlsx, rates_table, reviews_table
from reading.qa.radpeer import QA_OUTCOMES, SCORES
from reading.qa.service import month_range, name_lookup, parse_day
from reading.settings import ReadingSettings

peer_app = typer.Typer(
    help=(
        "Peer review (RADPEER): a share of each reader's signed reports of a month, reviewed blinded by "
        "another reader of the same or a higher tier; scores 1/2a/2b/3a/3b; discrepancy rates with 95% "
        "Wilson intervals; 3b cases go to a QA review queue."
    ),
    no_args_is_help=True,
)

Month = Annotated[str | None, typer.Option(help="Reports signed in this local month, e.g. 2026-10.")]
From = Annotated[str | None, typer.Option("--from", help="Reports signed from this local date, e.g. 2026-10-01.")]
To = Annotated[str | None, typer.Option("--to", help="… up to (not including) this local date.")]
ConsortiumName = Annotated[str | None, typer.Option(help="Only this consortium (default: all).")]
Csv = Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")]


def _consortium_id(session: Session, name: str | None) -> int | None:
    if name is None:
        return None
    found = session.scalar(select(Consortium.id).where(Consortium.name == name))
    if found is None:
        raise NotFound(f"no consortium {name!r}; `yunying site list` shows them")
    return found


def _dates(month: str | None, start: str | None, end: str | None) -> tuple[date | None, date | None]:
    if month:
        return month_range(month)
    return parse_day(start, "--from"), parse_day(end, "--to")


def _last_month() -> str:
    return (date.today().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")


@peer_app.command("sample")
def sample(
    month: Annotated[
        str | None, typer.Option(help="The local month of signing, e.g. 2026-10 (default: last month).")
    ] = None,
    share: Annotated[
        float | None, typer.Option(help="Share of each reader's reports, e.g. 0.03 (YUNYING_PEER_REVIEW_SHARE).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the draw, to repeat one (default: random).")] = None,
    consortium: ConsortiumName = None,
) -> None:
    """Draw each reader's share of a month's signed reports and assign them, blinded.

    At least one report per reader who signed any; each goes to the least loaded eligible
    reviewer. Run it after the month ends (a cron job on the 1st); running it again only tops
    up, never samples a report twice."""
    chosen = share if share is not None else ReadingSettings().peer_review_share

    def work(session: Session) -> str:
        run = peer.sample_month(
            session,
            month=month or _last_month(),
            share=chosen,
            seed=seed,
            now=utcnow(),
            consortium_id=_consortium_id(session, consortium),
            actor="cli",
        )
        return run.describe()

    _run("qa peer sample", work)


@peer_app.command("list")
def list_reviews(
    state: Annotated[list[str] | None, typer.Option(help="unassigned, assigned or scored (repeat).")] = None,
    month: Month = None,
    start: From = None,
    end: To = None,
    consortium: ConsortiumName = None,
    csv_out: Csv = False,
) -> None:
    """Every sampled review: reader, reviewer (or why none), score and QA outcome."""

    def work(session: Session) -> str:
        first, after = _dates(month, start, end)
        reviews = peer.reviews_in_scope(
            session, _consortium_id(session, consortium), states=state or (), start=first, end=after
        )
        names = name_lookup(session)
        views = [peer.qa_view(r, names) for r in reviews]
        if csv_out:
            return as_csv(reviews_table(views))
        table = Table("id", "month", "site", "reader", "reviewer", "study", "state", "score", "QA")
        for v in views:
            table.add_row(
                str(v["id"]),
                v["period"],
                v["site"],
                v["reader"],
                v["reviewer"] or f"— ({v['unassigned_reason']})",
                f"{v['modality'] or ''} {v['body_part'] or ''}".strip(),
                v["state"],
                v["score"] or "",
                f"{v['qa_state']}{' ' + v['qa_outcome'] if v['qa_outcome'] else ''}" if v["qa_state"] else "",
            )
        console.print(table)
        return f"{len(views)} peer review(s)"

    _run("qa peer list", work, plain=csv_out)


@peer_app.command("score")
def score(
    review_id: Annotated[int, typer.Argument(help="The peer review's id (`yunying qa peer list`).")],
    reviewer: Annotated[str, typer.Option(help="The reviewer's username (the reader it is assigned to).")],
    value: Annotated[str, typer.Option("--score", help=f"RADPEER score: {', '.join(SCORES)}.")],
    comment: Annotated[str | None, typer.Option(help="What the discrepancy is (needed for 2a-3b).")] = None,
) -> None:
    """Record a reviewer's score (e.g. from a paper form); a 3b opens a QA case."""

    def work(session: Session) -> str:
        review = peer.score_review(
            session, find_reader(session, reviewer), review_id, score=value, comment=comment, now=utcnow()
        )
        queued = "; it is in the QA review queue" if review.qa_state == "open" else ""
        return f"peer review {review.id} scored {review.score}{queued}"

    _run("qa peer score", work)


@peer_app.command("rates")
def rates(
    group_by: Annotated[str, typer.Option(help="Comma-separated: consortium, site, reader, modality, period.")] = (
        "reader"
    ),
    month: Month = None,
    start: From = None,
    end: To = None,
    consortium: ConsortiumName = None,
    csv_out: Csv = False,
) -> None:
    """Discrepancy rates per group with 95% Wilson score intervals.

    Discrepancy: scores 2a, 2b, 3a, 3b; significant discrepancy: 2b, 3b. Folded from the
    change log; by the local date the reviewed report was signed."""
    dimensions = [g.strip() for g in group_by.split(",") if g.strip()]

    def work(session: Session) -> str:
        first, after = _dates(month, start, end)
        groups = peer.rate_groups(
            session, _consortium_id(session, consortium), group_by=dimensions, start=first, end=after
        )
        if csv_out:
            return as_csv(rates_table(groups, dimensions))
        table = Table(*dimensions, "reviews", "1/2a/2b/3a/3b", "discrepancy (95% CI)", "significant (95% CI)")
        for group in groups:
            data = group.as_json()
            table.add_row(
                *(group.key[d] for d in dimensions),
                str(group.n),
                "/".join(str(n) for n in group.scores.values()),
                _rate(data["discrepancy"]),
                _rate(data["significant"]),
            )
        console.print(table)
        return f"{sum(g.n for g in groups)} scored review(s) in {len(groups)} group(s)"

    _run("qa peer rates", work, plain=csv_out)


def _rate(rate: dict[str, float | None]) -> str:
    if rate["rate"] is None:
        return "—"
    return f"{rate['rate']:.1%} ({rate['ci95_low']:.1%}-{rate['ci95_high']:.1%})"


@peer_app.command("queue")
def queue(
    state: Annotated[str, typer.Option(help="open, closed or any.")] = "open",
    consortium: ConsortiumName = None,
) -> None:
    """The QA review queue: reviews scored 3b."""

    def work(session: Session) -> str:
        reviews = peer.reviews_in_scope(session, _consortium_id(session, consortium), queue=state)
        names = name_lookup(session)
        table = Table("id", "site", "reader", "reviewer", "study", "comment", "QA")
        for r in reviews:
            v = peer.qa_view(r, names)
            table.add_row(
                str(v["id"]),
                v["site"],
                v["reader"],
                v["reviewer"] or "",
                v["study_uid"],
                v["comment"] or "",
                f"{v['qa_state']} {v['qa_outcome'] or ''}".strip(),
            )
        console.print(table)
        return f"{len(reviews)} case(s)"

    _run("qa peer queue", work)


@peer_app.command("close")
def close(
    review_id: Annotated[int, typer.Argument(help="The case's peer review id (`yunying qa peer queue`).")],
    outcome: Annotated[str, typer.Option(help=f"{' or '.join(QA_OUTCOMES)}.")],
    comment: Annotated[str, typer.Option(help="What was done: feedback to the reader, an addendum, a recall.")],
    by: Annotated[str, typer.Option(help="Who closes it (recorded in the change log).")],
) -> None:
    """Close a case of the QA review queue."""

    def work(session: Session) -> str:
        review = peer.close_case(session, None, review_id, outcome=outcome, comment=comment, by=by, now=utcnow())
        return f"QA case of peer review {review.id} closed: {review.qa_outcome}"

    _run("qa peer close", work)


@peer_app.command("export")
def export(
    path: Annotated[Path, typer.Argument(help="The workbook to write, e.g. peer-2026-10.xlsx.")],
    month: Month = None,
    start: From = None,
    end: To = None,
    consortium: ConsortiumName = None,
) -> None:
    """An XLSX workbook: the reviews, the rates per reader and the rates per site."""

    def work(session: Session) -> str:
        first, after = _dates(month, start, end)
        scope = _consortium_id(session, consortium)
        names = name_lookup(session)
        views = [peer.qa_view(r, names) for r in peer.reviews_in_scope(session, scope, start=first, end=after)]
        sheets = {"reviews": reviews_table(views)}
        for dimension in ("reader", "site"):
            groups = peer.rate_groups(session, scope, group_by=[dimension], start=first, end=after)
            sheets[f"rates by {dimension}"] = rates_table(groups, [dimension])
        path.write_bytes(as_xlsx(sheets))
        return f"{len(views)} peer review(s) written to {path}"

    _run("qa peer export", work)
