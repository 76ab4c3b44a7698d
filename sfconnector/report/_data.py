"""The referral program's numbers, read from Salesforce with SOQL aggregates (what reps and admins see there).

Four aggregate queries, however large the org:

- referrals grouped by channel, advocate program, status and routing rule -> the funnel by channel and by
  program, and the routing overrides by rule;
- won referrals grouped by advocate (top N), then referrals and rewards of those advocates -> top advocates,
  whose numbers are the advocate record's own (`sfconnector.rules.totals`: referrals as Total_Referrals__c,
  owed as Reward_Balance__c), with rejected referrals and rewards awaiting approval beside them;
- rewards grouped by status and type -> the liability: owed (Approved), awaiting approval (Pending Approval).

The rollups are plain functions of the aggregate rows, so they are tested without a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from sfconnector.clock import Clock, system_clock
from sfconnector.mapping.model import SchemaMapping
from sfconnector.rules.model import RoutingAction, RoutingRules
from sfconnector.rules.rewards import REJECTED as REWARD_REJECTED
from sfconnector.rules.routing import MISSING_TARGET_RULE
from sfconnector.rules.totals import (
    AWAITING_APPROVAL_REWARD_STATUSES,
    COUNTED_REFERRAL_STATUSES,
    OWED_REWARD_STATUSES,
    totals_from_aggregates,
)
from sfconnector.soql import IdList, chunked_in, soql

FUNNEL_STAGES: tuple[str, ...] = ("received", "routed", "converted", "won", "lost", "rejected")
# Statuses a referral reaches only after its lead converted (Lost straight from Lead is rare: still counted).
CONVERTED_OR_LATER = frozenset({"Converted", "Won", "Lost"})
REJECTED_STATUSES = frozenset({"Rejected", "Duplicate"})
NONE_LABEL = "(none)"
TOP_ADVOCATES = 10


class Querier(Protocol):
    def query(self, soql: str) -> list[dict[str, Any]]: ...


@dataclass
class Funnel:
    """One row of the funnel: how many referrals reached each stage."""

    group: str
    received: int = 0
    routed: int = 0  # the connector gave the lead an owner other than the standard one
    converted: int = 0
    won: int = 0
    lost: int = 0
    rejected: int = 0

    def values(self) -> tuple[int, ...]:
        return tuple(getattr(self, stage) for stage in FUNNEL_STAGES)


@dataclass(frozen=True)
class TopAdvocate:
    """One advocate's numbers, defined as on the advocate record (`sfconnector.rules.totals`)."""

    advocate_id: str
    name: str
    program: str
    referrals: int  # as Total_Referrals__c: Lead, Converted, Won, Lost
    successful: int  # as Successful_Referrals__c: Won
    reward_amount: Decimal  # every reward not rejected, clawbacks included
    owed: Decimal  # as Reward_Balance__c: Approved, not yet Paid
    awaiting_approval: Decimal = Decimal("0.00")  # Pending Approval: not owed yet
    rejected: int = 0  # Rejected and Duplicate referrals: not in `referrals`


@dataclass(frozen=True)
class Liability:
    status: str
    type: str
    rewards: int
    amount: Decimal


@dataclass
class Override:
    """How often one routing rule decided, and how often it overrode the standard owner."""

    rule: str
    action: str  # from the config: owner_of_advocate, user, queue, keep_standard; "unknown" if not in it
    referrals: int = 0
    overridden: int = 0


@dataclass
class ProgramReport:
    since: datetime | None
    generated_at: datetime
    total: Funnel
    by_channel: list[Funnel] = field(default_factory=list)
    by_program: list[Funnel] = field(default_factory=list)
    top_advocates: list[TopAdvocate] = field(default_factory=list)
    liability: list[Liability] = field(default_factory=list)
    overrides: list[Override] = field(default_factory=list)

    @property
    def owed_total(self) -> Decimal:
        """Approved rewards not yet paid: the sum of what every advocate's Reward_Balance__c holds."""
        return sum((r.amount for r in self.liability if r.status in OWED_REWARD_STATUSES), Decimal("0.00"))

    @property
    def awaiting_approval_total(self) -> Decimal:
        return sum(
            (r.amount for r in self.liability if r.status in AWAITING_APPROVAL_REWARD_STATUSES),
            Decimal("0.00"),
        )


def _label(value: Any) -> str:
    return str(value) if value not in (None, "") else NONE_LABEL


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01")) if value is not None else Decimal("0.00")


def rule_actions(rules: RoutingRules) -> dict[str, RoutingAction]:
    """Routing rule name -> its action, fallbacks under the names decisions record (`fallback:<case>`)."""
    actions: dict[str, RoutingAction] = {rule.name: rule.then for rule in rules.rules}
    fb = rules.fallbacks
    for case, action in (
        ("inactive_owner", fb.inactive_owner),
        ("inactive_advocate", fb.inactive_advocate),
        ("unknown_advocate", fb.unknown_advocate),
        ("no_match", fb.no_match),
    ):
        actions[f"fallback:{case}"] = action
    # A rejected referral (self-referral, duplicate) keeps the standard owner whatever rule matched.
    actions["attribution:rejected"] = RoutingAction("keep_standard")
    # A rule whose queue or user the org does not have: the standard owner was kept.
    actions[MISSING_TARGET_RULE] = RoutingAction("keep_standard")
    return actions


def _routed(rule: str | None, count: int, to_rep: int, actions: Mapping[str, RoutingAction]) -> int:
    """Referrals of a group whose owner the connector changed.

    `Routed_Owner__c` is set when the lead went to a user; a queue is not a user, so referrals of a rule
    routing to a queue count whole (an unknown rule: only what `Routed_Owner__c` proves).
    """
    action = actions.get(rule or "")
    if action is not None and action.kind == "queue":
        return count
    if action is not None and action.kind == "keep_standard":
        return 0
    return to_rep


def funnel_rollup(
    rows: Iterable[Mapping[str, Any]], key: str, mapping: SchemaMapping, actions: Mapping[str, RoutingAction]
) -> list[Funnel]:
    """Aggregate rows (`n`, `to_rep`, status, rule and the group field `key`) -> one funnel per group."""
    ref = mapping.referral
    groups: dict[str, Funnel] = {}
    for row in rows:
        group = groups.setdefault(_label(row.get(key)), Funnel(_label(row.get(key))))
        count, status = int(row.get("n") or 0), row.get(ref.status)
        group.received += count
        group.routed += _routed(row.get(ref.routing_rule), count, int(row.get("to_rep") or 0), actions)
        group.converted += count if status in CONVERTED_OR_LATER else 0
        group.won += count if status == "Won" else 0
        group.lost += count if status == "Lost" else 0
        group.rejected += count if status in REJECTED_STATUSES else 0
    return sorted(groups.values(), key=lambda f: (-f.received, f.group))


def override_rollup(
    rows: Iterable[Mapping[str, Any]], mapping: SchemaMapping, actions: Mapping[str, RoutingAction]
) -> list[Override]:
    ref = mapping.referral
    by_rule: dict[str, Override] = {}
    for row in rows:
        rule = row.get(ref.routing_rule)
        action = actions.get(rule or "")
        item = by_rule.setdefault(
            _label(rule), Override(_label(rule), action.kind if action is not None else "unknown")
        )
        count = int(row.get("n") or 0)
        item.referrals += count
        item.overridden += _routed(rule, count, int(row.get("to_rep") or 0), actions)
    return sorted(by_rule.values(), key=lambda o: (-o.referrals, o.rule))


def _total(funnels: Sequence[Funnel]) -> Funnel:
    total = Funnel("total")
    for funnel in funnels:
        for stage in FUNNEL_STAGES:
            setattr(total, stage, getattr(total, stage) + getattr(funnel, stage))
    return total


def _field_name(path: str) -> str:
    """The key Salesforce gives a grouped field in an AggregateResult: `Advocate__r.Program__c` -> `Program__c`."""
    return path.rpartition(".")[2]


class ReportReader:
    """Reads the aggregates the report needs (every query built with `sfconnector.soql`)."""

    def __init__(
        self, client: Querier, mapping: SchemaMapping, routing: RoutingRules, clock: Clock = system_clock
    ) -> None:
        self._client, self._mapping, self._actions = client, mapping, rule_actions(routing)
        self._clock = clock

    def _where(self, since: datetime | None, *conditions: str) -> tuple[str, dict[str, Any]]:
        parts = list(conditions)
        params: dict[str, Any] = {}
        if since is not None:
            parts.append("CreatedDate >= {since}")
            params["since"] = since
        return (" WHERE " + " AND ".join(parts) if parts else ""), params

    def read(self, since: datetime | None = None, *, top: int = TOP_ADVOCATES) -> ProgramReport:
        m = self._mapping
        ref, adv = m.referral, m.advocate
        program_path = f"{_advocate_relationship(m)}.{adv.program}"
        where, params = self._where(since)
        rows = self._client.query(
            soql(
                f"SELECT {ref.channel}, {program_path}, {ref.status}, {ref.routing_rule}, COUNT(Id) n,"
                f" COUNT({ref.routed_owner}) to_rep FROM {ref.object}{where}"
                f" GROUP BY {ref.channel}, {program_path}, {ref.status}, {ref.routing_rule}",
                **params,
            )
        )
        by_channel = funnel_rollup(rows, ref.channel, m, self._actions)
        by_program = funnel_rollup(rows, _field_name(program_path), m, self._actions)
        return ProgramReport(
            since=since,
            generated_at=self._clock(),
            total=_total(by_channel),
            by_channel=by_channel,
            by_program=by_program,
            top_advocates=self._top_advocates(since, top),
            liability=self._liability(since),
            overrides=override_rollup(rows, m, self._actions),
        )

    def _top_advocates(self, since: datetime | None, top: int) -> list[TopAdvocate]:
        m = self._mapping
        ref, rew, adv = m.referral, m.reward, m.advocate
        rel = _advocate_relationship(m)
        where, params = self._where(since, f"{ref.advocate} != null")
        # Ranked by successful referrals, then by referrals: the two ranked lists, merged, hold the top N.
        ranked: dict[str, dict[str, Any]] = {}
        counted = {"counted": sorted(COUNTED_REFERRAL_STATUSES)}
        for condition, extra in ((f"{ref.status} = 'Won'", {}), (f"{ref.status} IN {{counted}}", counted)):
            clause = where + f" AND {condition}"
            for row in self._client.query(
                soql(
                    f"SELECT {ref.advocate}, {rel}.{adv.name}, {rel}.{adv.program}, COUNT(Id) n FROM {ref.object}"
                    f"{clause} GROUP BY {ref.advocate}, {rel}.{adv.name}, {rel}.{adv.program}"
                    f" ORDER BY COUNT(Id) DESC LIMIT {top}",
                    **params,
                    **extra,
                )
            ):
                ranked.setdefault(str(row[ref.advocate]), dict(row))
        if not ranked:
            return []
        ids = sorted(ranked)
        counts: dict[str, dict[str, int]] = {i: {} for i in ids}
        sums: dict[str, dict[str, Decimal]] = {i: {} for i in ids}
        since_clause, since_params = (
            ("", {}) if since is None else (" AND CreatedDate >= {since}", {"since": since})
        )
        for chunk in chunked_in(ids):
            for row in self._client.query(
                soql(
                    f"SELECT {ref.advocate}, {ref.status}, COUNT(Id) n FROM {ref.object}"
                    f" WHERE {ref.advocate} IN {{ids}}{since_clause} GROUP BY {ref.advocate}, {ref.status}",
                    ids=IdList(chunk),
                    **since_params,
                )
            ):
                by_status = counts.setdefault(str(row[ref.advocate]), {})
                status = str(row.get(ref.status) or "")
                by_status[status] = by_status.get(status, 0) + int(row.get("n") or 0)
            for row in self._client.query(
                soql(
                    f"SELECT {rew.advocate}, {rew.status}, SUM({rew.amount}) amount FROM {rew.object}"
                    f" WHERE {rew.advocate} IN {{ids}}{since_clause} GROUP BY {rew.advocate}, {rew.status}",
                    ids=IdList(chunk),
                    **since_params,
                )
            ):
                by_status_sum = sums.setdefault(str(row[rew.advocate]), {})
                status = str(row.get(rew.status) or "")
                by_status_sum[status] = by_status_sum.get(status, Decimal(0)) + _money(row.get("amount"))
        advocates = []
        for i in ids:
            totals = totals_from_aggregates(counts[i], sums[i])
            advocates.append(
                TopAdvocate(
                    advocate_id=i,
                    name=_label(ranked[i].get(adv.name)),
                    program=_label(ranked[i].get(adv.program)),
                    referrals=totals.total_referrals,
                    successful=totals.successful_referrals,
                    reward_amount=sum(
                        (a for status, a in sums[i].items() if status != REWARD_REJECTED), Decimal("0.00")
                    ),
                    owed=totals.owed,
                    awaiting_approval=totals.awaiting_approval,
                    rejected=totals.rejected_referrals,
                )
            )
        advocates.sort(key=lambda a: (-a.successful, -a.reward_amount, -a.referrals, a.name))
        return advocates[:top]

    def _liability(self, since: datetime | None) -> list[Liability]:
        rew = self._mapping.reward
        where, params = self._where(since)
        rows = self._client.query(
            soql(
                f"SELECT {rew.status}, {rew.type}, SUM({rew.amount}) amount, COUNT(Id) n FROM {rew.object}{where}"
                f" GROUP BY {rew.status}, {rew.type}",
                **params,
            )
        )
        order = {s: i for i, s in enumerate(("Pending Approval", "Approved", "Paid", "Rejected"))}
        out = [
            Liability(
                _label(r.get(rew.status)),
                _label(r.get(rew.type)),
                int(r.get("n") or 0),
                _money(r.get("amount")),
            )
            for r in rows
        ]
        return sorted(out, key=lambda row: (order.get(row.status, len(order)), row.status, row.type))


def _advocate_relationship(mapping: SchemaMapping) -> str:
    field_name = mapping.referral.advocate
    return field_name[:-3] + "__r" if field_name.endswith("__c") else field_name.removesuffix("Id")
