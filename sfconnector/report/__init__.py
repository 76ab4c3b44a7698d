"""The referral program report: funnel, top advocates, reward liability and routing overrides, from SOQL aggregates.

report = ReportReader(client, config.mapping, config.routing).read(since)
print(render(report, "table"))
"""

from sfconnector.report._data import (
    FUNNEL_STAGES,
    Funnel,
    Liability,
    Override,
    ProgramReport,
    ReportReader,
    TopAdvocate,
    funnel_rollup,
    override_rollup,
    rule_actions,
)
from sfconnector.report._render import FORMATS, as_json, render, render_csv, render_json, render_table

__all__ = [
    "FORMATS",
    "FUNNEL_STAGES",
    "Funnel",
    "Liability",
    "Override",
    "ProgramReport",
    "ReportReader",
    "TopAdvocate",
    "as_json",
    "funnel_rollup",
    "override_rollup",
    "render",
    "render_csv",
    "render_json",
    "render_table",
    "rule_actions",
]
