"""A `ProgramReport` as a readable table, CSV (one row per number) or JSON. Pure: report in, text out."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sfconnector.report._data import FUNNEL_STAGES, Funnel, ProgramReport

FORMATS = ("table", "csv", "json")


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def _rate(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, numeric_from: int = 1) -> list[str]:
    """Aligned columns: text left, numbers right."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i >= numeric_from else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()

    return [line(cells[0]), line(["-" * w for w in widths]), *(line(r) for r in cells[1:])]


def _funnel_rows(funnels: Sequence[Funnel], total: Funnel) -> list[list[Any]]:
    rows: list[list[Any]] = [[f.group, *f.values(), _rate(f.won, f.received)] for f in funnels]
    rows.append([total.group, *total.values(), _rate(total.won, total.received)])
    return rows


def render_table(report: ProgramReport) -> str:
    since = f"since {report.since:%Y-%m-%d %H:%M} UTC" if report.since else "all time"
    out = [
        f"Referral program report ({since}; read from Salesforce {report.generated_at:%Y-%m-%d %H:%M} UTC)",
        "",
    ]
    headers = ["", *FUNNEL_STAGES, "won %"]
    out += [
        "Funnel by channel",
        *_table(["channel", *headers[1:]], _funnel_rows(report.by_channel, report.total)),
        "",
    ]
    out += [
        "Funnel by advocate program",
        *_table(["program", *headers[1:]], _funnel_rows(report.by_program, report.total)),
        "",
    ]
    out.append("Top advocates")
    if report.top_advocates:
        out += _table(
            [
                "advocate",
                "program",
                "referrals",
                "successful",
                "rejected",
                "rewards",
                "owed",
                "awaiting approval",
            ],
            [
                [
                    a.name,
                    a.program,
                    a.referrals,
                    a.successful,
                    a.rejected,
                    _money(a.reward_amount),
                    _money(a.owed),
                    _money(a.awaiting_approval),
                ]
                for a in report.top_advocates
            ],
            numeric_from=2,
        )
        out.append(
            "  referrals and successful as on the advocate record (rejected and duplicate referrals apart);"
            " owed = Approved, not yet paid (Reward_Balance__c)"
        )
    else:
        out.append("  no referral has an advocate yet")
    out += ["", "Reward liability"]
    if report.liability:
        out += _table(
            ["status", "type", "rewards", "amount"],
            [[r.status, r.type, r.rewards, _money(r.amount)] for r in report.liability],
            numeric_from=2,
        )
        out.append(f"owed (Approved, not yet paid): {_money(report.owed_total)}")
        out.append(f"awaiting approval (Pending Approval): {_money(report.awaiting_approval_total)}")
    else:
        out.append("  no rewards")
    out += ["", "Routing overrides by rule (how often the standard owner was overridden)"]
    if report.overrides:
        out += _table(
            ["rule", "action", "referrals", "overridden", "rate"],
            [
                [o.rule, o.action, o.referrals, o.overridden, _rate(o.overridden, o.referrals)]
                for o in report.overrides
            ],
            numeric_from=2,
        )
    else:
        out.append("  no referrals")
    return "\n".join(out) + "\n"


def as_json(report: ProgramReport) -> dict[str, Any]:
    def funnel(f: Funnel) -> dict[str, Any]:
        return {"group": f.group, **{stage: getattr(f, stage) for stage in FUNNEL_STAGES}}

    return {
        "since": report.since.isoformat() if report.since else None,
        "generated_at": report.generated_at.isoformat(),
        "funnel": {
            "total": funnel(report.total),
            "by_channel": [funnel(f) for f in report.by_channel],
            "by_program": [funnel(f) for f in report.by_program],
        },
        "top_advocates": [
            {
                "advocate_id": a.advocate_id,
                "name": a.name,
                "program": a.program,
                "referrals": a.referrals,
                "successful": a.successful,
                "rejected": a.rejected,
                "reward_amount": str(a.reward_amount),
                "owed": str(a.owed),
                "awaiting_approval": str(a.awaiting_approval),
            }
            for a in report.top_advocates
        ],
        "reward_liability": {
            "owed": str(report.owed_total),
            "awaiting_approval": str(report.awaiting_approval_total),
            "by_status_and_type": [
                {"status": r.status, "type": r.type, "rewards": r.rewards, "amount": str(r.amount)}
                for r in report.liability
            ],
        },
        "routing_overrides": [
            {"rule": o.rule, "action": o.action, "referrals": o.referrals, "overridden": o.overridden}
            for o in report.overrides
        ],
    }


def render_json(report: ProgramReport) -> str:
    return json.dumps(as_json(report), indent=2) + "\n"


def render_csv(report: ProgramReport) -> str:
    """One row per number (section, group, metric, value): loads into any spreadsheet as a pivot source."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["section", "group", "metric", "value"])
    for section, funnels in (
        ("funnel_by_channel", report.by_channel),
        ("funnel_by_program", report.by_program),
    ):
        for f in [*funnels, report.total]:
            for stage in FUNNEL_STAGES:
                writer.writerow([section, f.group, stage, getattr(f, stage)])
    for a in report.top_advocates:
        group = f"{a.name} ({a.advocate_id})"
        for metric, value in (
            ("program", a.program),
            ("referrals", a.referrals),
            ("successful", a.successful),
            ("rejected", a.rejected),
            ("reward_amount", a.reward_amount),
            ("owed", a.owed),
            ("awaiting_approval", a.awaiting_approval),
        ):
            writer.writerow(["top_advocates", group, metric, value])
    for r in report.liability:
        writer.writerow(["reward_liability", f"{r.status} / {r.type}", "rewards", r.rewards])
        writer.writerow(["reward_liability", f"{r.status} / {r.type}", "amount", r.amount])
    writer.writerow(["reward_liability", "owed", "amount", report.owed_total])
    writer.writerow(["reward_liability", "awaiting_approval", "amount", report.awaiting_approval_total])
    for o in report.overrides:
        writer.writerow(["routing_overrides", o.rule, "action", o.action])
        writer.writerow(["routing_overrides", o.rule, "referrals", o.referrals])
        writer.writerow(["routing_overrides", o.rule, "overridden", o.overridden])
    return buffer.getvalue()


def render(report: ProgramReport, fmt: str) -> str:
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    return render_table(report)
