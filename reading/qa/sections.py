"""The standard sections of the monthly quality report, each from ``MonthlyFigures``.

Numbers print as the CSV exports write them (a p50 of 30 minutes is ``30.0`` in both; the
compliance the CSV gives as 0.8333 prints as 83.3%), so the PDF can be checked against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Spacer

from reading.qa import charts
from reading.qa.monthly import CAUSES, MonthlyFigures
from reading.qa.report import Kit, ReportSection

PRIORITIES: Final = ("stat", "urgent", "routine")


def standard_sections(figures: MonthlyFigures) -> list[ReportSection]:
    return [
        SummarySection(figures),
        VolumeSection(figures),
        TurnaroundSection(figures),
        BreachSection(figures),
        EscalationSection(figures),
        AiSection(figures),
        SiteSection(figures),
    ]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100.0 * value:.1f}%"


def _share(part: int, whole: int) -> str:
    return _pct(part / whole if whole else None)


def _num(value: float | int | None) -> str:
    return "—" if value is None else str(value)


@dataclass(frozen=True)
class SummarySection:
    figures: MonthlyFigures
    title: str = "概要 Summary"

    def story(self, kit: Kit) -> list[Flowable]:
        f, scope = self.figures, self.figures.scope
        taken = scope.now.astimezone(ZoneInfo(scope.timezone))
        met, judged = f.compliance
        escalated, closed = f.escalation
        reads = sum(line.signed for line in f.workload)
        rows = [
            ["Studies arrived", str(f.studies)],
            ["Reading tasks of those studies", str(f.tasks)],
            ["Reads closed in the month (signed reports)", str(reads)],
            ["SLA compliance (met / judged)", f"{_share(met, judged)} ({met}/{judged})"],
            [
                "Escalation rate (county tasks escalated / closed)",
                f"{_share(escalated, closed)} ({escalated}/{closed})",
            ],
            ["Breaches (signed late or open past the deadline)", str(len(f.breaches))],
        ]
        return [
            kit.text(f"{scope.consortium}　月度质控报告", "title"),
            kit.text(f"Monthly consortium quality report — {scope.month}", "subtitle"),
            kit.text(
                f"Local month {scope.start.isoformat()} to {scope.end.isoformat()} (exclusive), {scope.timezone}. "
                f"Figures taken {_local(taken)}: open tasks are judged against their deadline at that time. "
                "Every time comes from the change log (docs/qa.md).",
                "small",
            ),
            Spacer(1, 3 * mm),
            *kit.section(self.title, [kit.table(["", ""], rows, [kit.width * 0.6, kit.width * 0.4])]),
        ]


def _local(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class VolumeSection:
    figures: MonthlyFigures
    title: str = "业务量 Volume"

    def story(self, kit: Kit) -> list[Flowable]:
        f = self.figures
        if not f.volume:
            return kit.section(self.title, [kit.text("No study arrived this month.")])
        days = f.scope.days
        rows = []
        for modality, per_day in sorted(f.volume.items()):
            busiest = max(range(len(days)), key=lambda i: per_day[i])
            rows.append([modality, str(sum(per_day)), f"{days[busiest]} ({per_day[busiest]})"])
        return kit.section(
            self.title,
            [
                kit.text("Studies per local day of arrival, by modality."),
                kit.chart(charts.volume_chart(days, f.volume)),
                kit.table(["modality", "studies", "busiest day"], rows, [30 * mm, 25 * mm, 45 * mm]),
            ],
        )


@dataclass(frozen=True)
class TurnaroundSection:
    figures: MonthlyFigures
    title: str = "报告时效 Turnaround against the SLA"

    def story(self, kit: Kit) -> list[Flowable]:
        f = self.figures
        groups = {g.key["priority"]: g for g in f.by_priority}
        present = [p for p in PRIORITIES if p in groups]
        rows = []
        for priority in present:
            group, reading = groups[priority], f.reading[priority]
            report = group.as_json()["minutes"]["report"]
            rows.append(
                [
                    priority,
                    str(group.count),
                    str(f.sla[priority]),
                    f"{group.met}/{group.met + group.breached}",
                    _pct(group.compliance),
                    *(_num(reading[f"p{q}"]) for q in (50, 90, 95)),
                    *(_num(report[f"p{q}"]) for q in (50, 90, 95)),
                ]
            )
        body: list[Flowable] = [
            kit.text(
                "Reading time is queued → signed, what the SLA allows (minutes per priority); report "
                "turnaround is first image → signed. Escalated county tasks are judged on their "
                "provincial task. Percentiles interpolate between order statistics."
            ),
            kit.table(
                ["priority", "tasks", "SLA min", "met / judged", "compliance"]
                + [f"reading p{q}" for q in (50, 90, 95)]
                + [f"report p{q}" for q in (50, 90, 95)],
                rows,
                [w * mm for w in (15, 14, 15, 22, 19, 14, 14, 14, 14, 14, 14)],
            ),
        ]
        if f.sla_overrides:
            body.append(kit.text("Modality entries of the SLA table: " + "; ".join(f.sla_overrides) + ".", "small"))
        if any(f.reading[p]["n"] for p in present):
            percentiles: dict[str, list[float | None]] = {
                p: [f.reading[p][f"p{q}"] for q in (50, 90, 95)] for p in present
            }
            body.append(kit.chart(charts.sla_chart(present, percentiles, f.sla)))
        return kit.section(self.title, body)


@dataclass(frozen=True)
class BreachSection:
    figures: MonthlyFigures
    title: str = "超时原因 Breach causes"

    def story(self, kit: Kit) -> list[Flowable]:
        f = self.figures
        if not f.breaches:
            return kit.section(self.title, [kit.text("No task was signed late or is open past its deadline.")])
        rows = [[CAUSES.get(interval, interval), str(n), str(still_open)] for interval, n, still_open in f.causes]
        return kit.section(
            self.title,
            [
                kit.text(
                    f"{len(f.breaches)} task(s) past their deadline, by the interval that ran longest "
                    "(the breach list of /api/qa/breaches)."
                ),
                kit.table(["longest interval", "breaches", "still open"], rows, [80 * mm, 25 * mm, 25 * mm]),
                kit.chart(charts.breach_chart([(CAUSES.get(i, i), n) for i, n, _ in f.causes])),
            ],
        )


@dataclass(frozen=True)
class EscalationSection:
    figures: MonthlyFigures
    title: str = "上转率 Escalation rate"

    def story(self, kit: Kit) -> list[Flowable]:
        escalated, closed = self.figures.escalation
        rows = [
            [s.site, str(s.county_closed), str(s.county_escalated), _pct(s.escalation_rate)]
            for s in self.figures.sites
            if s.county_closed
        ]
        return kit.section(
            self.title,
            [
                kit.text(
                    f"{_share(escalated, closed)} of the county tasks closed ({escalated} of {closed}) were "
                    "escalated to the provincial tier (tasks of the month's studies)."
                ),
                kit.table(
                    ["site", "county tasks closed", "escalated", "rate"], rows, [70 * mm, 35 * mm, 25 * mm, 25 * mm]
                ),
            ],
        )


@dataclass(frozen=True)
class AiSection:
    figures: MonthlyFigures
    title: str = "AI 表现 AI performance in practice"

    def story(self, kit: Kit) -> list[Flowable]:
        if not self.figures.ai:
            return kit.section(self.title, [kit.text("No AI finding this month.")])
        rows = []
        for line in self.figures.ai:
            data = line.as_json()
            lifted = data["prioritised"]
            rows.append(
                [
                    line.model,
                    line.version,
                    line.site,
                    str(line.screened),
                    _pct(line.flagged_rate),
                    _pct(line.agreement),
                    f"{line.agreed}/{line.opinions}",
                    str(line.prioritised),
                    _num(lifted["wait_p50"]),
                    _num(lifted["peer_wait_p50"]),
                    _num(lifted["time_saved_p50"]),
                ]
            )
        header = [
            "model",
            "version",
            "site",
            "studies screened",
            "flagged",
            "agreement",
            "agreed / opinions",
            "AI-raised tasks",
            "wait p50",
            "peers p50",
            "saved p50",
        ]
        return kit.section(
            self.title,
            [
                kit.table(header, rows, [w * mm for w in (21, 14, 21, 14, 13, 15, 16, 14, 14, 13, 14)], text_columns=3),
                kit.text(
                    "Flagged: studies with a positive finding among those the model screened. Agreement: "
                    "readers' opinions that agreed with the model's findings (— when no reader gave one). "
                    "AI-raised: tasks whose priority the pre-screen raised; wait: their minutes queued → "
                    "claimed (median); peers: what the other tasks of that priority and tier waited; saved: "
                    "what tasks at the priority before the raise waited minus the task's own wait (a lower "
                    "bound for a raise to stat at routing). Definitions: docs/qa.md.",
                    "small",
                ),
            ],
        )


@dataclass(frozen=True)
class SiteSection:
    figures: MonthlyFigures
    title: str = "各机构 Per site"

    def story(self, kit: Kit) -> list[Flowable]:
        sites = self.figures.sites
        rows = []
        for s in sites:
            group = s.turnaround
            report = group.as_json()["minutes"]["report"]["p50"] if group else None
            rows.append(
                [
                    s.site,
                    s.site_tier,
                    str(s.studies),
                    str(group.count) if group else "0",
                    f"{group.met}/{group.met + group.breached}" if group else "—",
                    _pct(group.compliance if group else None),
                    _num(report),
                    str(s.reads.get("county", 0)),
                    str(s.reads.get("provincial", 0)),
                    str(s.reads.get("escalated", 0)),
                ]
            )
        header = [
            "site",
            "tier",
            "studies",
            "tasks",
            "SLA met / judged",
            "compliance",
            "report p50 (min)",
            "county reads",
            "provincial reads",
            "escalated",
        ]
        judged = [s for s in sites if s.turnaround is not None]
        body: list[Flowable] = [
            kit.text(
                "Studies and tasks that arrived in the month with their SLA compliance and median report "
                "turnaround (as /api/qa/turnaround?group_by=site); reads closed in the month per tier "
                "(as /api/qa/workload)."
            ),
            kit.table(header, rows, [w * mm for w in (26, 15, 13, 13, 22, 19, 16, 15, 16, 17)], text_columns=2),
        ]
        if judged:
            body.append(
                kit.chart(
                    charts.compliance_chart(
                        [s.site for s in judged], [s.turnaround.compliance for s in judged if s.turnaround]
                    )
                )
            )
        return kit.section(self.title, body)
