"""docs/admin.md's reward and notification examples are real: they compile, and the reasons it quotes are the
ones the rules give."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from sfconnector.report import rule_actions
from sfconnector.rules.model import RoutingRules
from sfconnector.rules.notifications import PLACEHOLDERS, compile_notifications
from sfconnector.rules.rewards import (
    RULE_KEYS,
    SECTION_KEYS,
    AdvocateFacts,
    Problem,
    WonOpportunityFacts,
    compile_rewards,
    decide_rewards,
)

ADMIN = (Path(__file__).resolve().parents[1] / "docs" / "admin.md").read_text(encoding="utf-8")


def _yaml_blocks(section: str) -> list[dict[str, Any]]:
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", ADMIN, re.S)]
    return [b[section] for b in blocks if isinstance(b, dict) and section in b]


def test_the_rewards_example_compiles_without_problems() -> None:
    (section,) = _yaml_blocks("rewards")
    problems: list[Problem] = []
    compile_rewards(section, problems)
    assert problems == []


def test_the_notifications_example_compiles_without_problems() -> None:
    (section,) = _yaml_blocks("notifications")
    problems: list[Problem] = []
    templates = compile_notifications(section, problems)
    assert problems == []
    assert "lost" not in templates.advocate and "won" in templates.advocate


def test_the_quoted_reasons_are_the_ones_the_rules_give() -> None:
    (section,) = _yaml_blocks("rewards")
    won = WonOpportunityFacts(
        opportunity_id="006000000000009AAA",
        amount=Decimal(30000),
        stage="Closed Won",
        is_won=True,
        won_on=date(2026, 12, 7),
    )
    partner = AdvocateFacts(id="a00000000000009AAA", program="Partner")
    for placement, amount in (("after_promotions", "1000.00"), ("before_promotions", "2000.00")):
        rules = compile_rewards({**section, "cap_applies": placement}, [])
        decision = next(
            d
            for d in decide_rewards(won, partner, [], rules, date(2026, 12, 7))
            if d.rule == "partner-commission"
        )
        assert decision.amount == Decimal(amount)
        reason = decision.reason.split("; above approval threshold")[0]
        assert f"| `{reason}` |" in ADMIN, reason


def test_every_reward_key_and_placeholder_is_documented() -> None:
    rewards = ADMIN.split("## Rewards")[1].split("## Notifications")[0]
    for key in (*SECTION_KEYS, *RULE_KEYS, "multiply", "add", "within_days", "adjustment_status"):
        assert f"`{key}`" in rewards, key
    notifications = ADMIN.split("## Notifications")[1].split("## Rule names you will see")[0]
    for placeholder in PLACEHOLDERS:
        assert f"`{{{placeholder}}}`" in notifications, placeholder


def test_every_rule_name_the_connector_records_is_documented() -> None:
    names = ADMIN.split("## Rule names you will see")[1].split("\n## ")[0]
    for rule in (*rule_actions(RoutingRules()), "manual_reassignment"):
        assert f"| `{rule}` |" in names, rule
