"""Batched reads the lifecycle of one batch needs: referrals, opportunities, rewards, advocates, their records.

One query per kind per batch (IN lists chunked), never one per event. Rows come back as plain frozen data so
the decisions stay pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sfconnector.mapping.model import SchemaMapping
from sfconnector.pipeline.lookups import Querier
from sfconnector.rules.rewards import RewardRules
from sfconnector.soql import IdList, chunked_in, soql

# Values per IN list: long statements go to Salesforce in a Composite body (one API call, up to 100,000
# characters), so a batch's keys fit one query instead of one per 2,000 characters of URL.
IN_CHARS = 16_000


def id15(value: object) -> str:
    return str(value or "")[:15]


def _relationship(field_name: str) -> str:
    return field_name[:-3] + "__r" if field_name.endswith("__c") else field_name.removesuffix("Id")


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _date(value: Any) -> date | None:
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def parse_datetime(value: Any) -> datetime | None:
    """Salesforce's `2026-11-23T04:55:41.953+0000` (or ISO 8601) as an aware datetime."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


@dataclass(frozen=True)
class ReferralRow:
    """A Referral__c as Salesforce has it (id set) or as this process decided it and is writing it (id None)."""

    key: str
    status: str
    id: str | None = None
    advocate_id: str | None = None
    lead_id: str | None = None
    contact_id: str | None = None
    opportunity_id: str | None = None
    channel: str | None = None
    name: str | None = None
    company: str | None = None
    last_modified: datetime | None = None


@dataclass(frozen=True)
class RewardRow:
    key: str
    status: str
    amount: Decimal
    id: str | None = None
    advocate_id: str | None = None
    referral_id: str | None = None
    opportunity_id: str | None = None
    rule: str | None = None
    type: str | None = None
    payable_on: date | None = None
    created: datetime | None = None
    last_modified: datetime | None = None


@dataclass(frozen=True)
class AdvocateRow:
    id: str
    name: str | None
    email: str | None
    email_opt_out: bool
    owner_id: str | None
    owner_name: str | None
    program: str | None
    preferred_reward: str | None
    status: str | None
    referral_code: str | None
    totals: tuple[int, int, Decimal] | None  # Total_Referrals__c, Successful_Referrals__c, Reward_Balance__c
    fields: Mapping[str, Any] = field(default_factory=dict)
    owner_active: bool | None = None  # None: not read


@dataclass(frozen=True)
class RecordOwner:
    """Who owns a record, as a task or an email may name them: a user (active or not) or a queue."""

    id: str
    name: str | None
    active: bool | None  # None: a queue, or not read

    @property
    def is_active_user(self) -> bool:
        return self.id.startswith("005") and self.active is not False


def owner_of(row: Mapping[str, Any], owner_field: str = "OwnerId") -> RecordOwner | None:
    """The owner of a queried row that selected `OwnerId, Owner.Name, Owner.IsActive`."""
    owner_id = row.get(owner_field)
    if not owner_id:
        return None
    owner = row.get("Owner") if isinstance(row.get("Owner"), Mapping) else {}
    active = (owner or {}).get("IsActive")
    return RecordOwner(
        str(owner_id), _str((owner or {}).get("Name")), active if isinstance(active, bool) else None
    )


def opportunity_fields_read(rules: RewardRules | None) -> list[str]:
    """`opportunity.<Field>` names the reward rules and promotions test, to read with the opportunity."""
    if rules is None:
        return []
    names: set[str] = set()
    conditions = [c for r in rules.rules for c in r.conditions] + [
        c for p in rules.promotions for c in p.conditions
    ]
    for condition in conditions:
        prefix, _, rest = condition.field.partition(".")
        if prefix == "opportunity" and rest:
            names.add(rest)
    return sorted(names)


class LifecycleReader:
    """The lifecycle's SOQL; each method is one query (per IN chunk) for the whole batch."""

    def __init__(self, client: Querier, mapping: SchemaMapping, rewards: RewardRules | None) -> None:
        self._client, self._mapping = client, mapping
        self._opportunity_extra = opportunity_fields_read(rewards)

    def _query_in(self, template: str, ids: Iterable[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for chunk in chunked_in(sorted({i for i in ids if i}), IN_CHARS):
            rows.extend(self._client.query(soql(template, values=IdList(chunk))))
        return rows

    # -- referrals --------------------------------------------------------------------------------------

    def _referral_select(self) -> str:
        ref, lead = self._mapping.referral, self._mapping.lead
        rel = _relationship(ref.lead)
        return (
            f"SELECT Id, {ref.external_key}, {ref.status}, {ref.advocate}, {ref.lead}, {ref.contact}, "
            f"{ref.opportunity}, {ref.channel}, {rel}.{lead.first_name}, {rel}.{lead.last_name}, "
            f"{rel}.{lead.company}, LastModifiedDate FROM {ref.object}"
        )

    def _referral(self, row: Mapping[str, Any]) -> ReferralRow:
        ref, lead = self._mapping.referral, self._mapping.lead
        parent = row.get(_relationship(ref.lead))
        parent = parent if isinstance(parent, Mapping) else {}
        name = " ".join(str(parent.get(f) or "") for f in (lead.first_name, lead.last_name)).strip()
        return ReferralRow(
            key=str(row.get(ref.external_key) or f"id:{row['Id']}"),
            status=str(row.get(ref.status) or ""),
            id=str(row["Id"]),
            advocate_id=_str(row.get(ref.advocate)),
            lead_id=_str(row.get(ref.lead)),
            contact_id=_str(row.get(ref.contact)),
            opportunity_id=_str(row.get(ref.opportunity)),
            channel=_str(row.get(ref.channel)),
            name=name or None,
            company=_str(parent.get(lead.company)),
            last_modified=parse_datetime(row.get("LastModifiedDate")),
        )

    def referrals_of(self, lead_ids: Sequence[str], opportunity_ids: Sequence[str]) -> list[ReferralRow]:
        """Referrals of these leads or opportunities: one query (both IN lists in one WHERE)."""
        ref = self._mapping.referral
        leads, opps = sorted(set(lead_ids)), sorted(set(opportunity_ids))
        if not leads and not opps:
            return []
        rows: list[dict[str, Any]] = []
        if leads and opps and len(leads) + len(opps) <= 300:
            rows = self._client.query(
                soql(
                    f"{self._referral_select()} WHERE {ref.lead} IN {{leads}} OR {ref.opportunity} IN {{opps}}",
                    leads=IdList(leads),
                    opps=IdList(opps),
                )
            )
        else:
            rows = self._query_in(f"{self._referral_select()} WHERE {ref.lead} IN {{values}}", leads)
            rows += self._query_in(f"{self._referral_select()} WHERE {ref.opportunity} IN {{values}}", opps)
        seen: dict[str, ReferralRow] = {}
        for row in rows:
            seen[str(row["Id"])] = self._referral(row)
        return list(seen.values())

    def referrals_by(self, *, ids: Sequence[str] = (), keys: Sequence[str] = ()) -> list[ReferralRow]:
        """Referrals by record id or by External_Key__c (one query per kind, chunked)."""
        ref = self._mapping.referral
        rows = self._query_in(f"{self._referral_select()} WHERE Id IN {{values}}", ids)
        for chunk in chunked_in(sorted(set(keys)), IN_CHARS):
            rows += self._client.query(
                soql(f"{self._referral_select()} WHERE {ref.external_key} IN {{values}}", values=chunk)
            )
        return [self._referral(r) for r in rows]

    def referral_counts(self, advocate_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """Advocate id (15) -> referral status -> count: one aggregate query."""
        ref = self._mapping.referral
        template = (
            f"SELECT {ref.advocate}, {ref.status}, COUNT(Id) n FROM {ref.object} WHERE {ref.advocate} IN {{values}}"
            f" GROUP BY {ref.advocate}, {ref.status}"
        )
        out: dict[str, dict[str, int]] = {}
        for row in self._query_in(template, advocate_ids):
            by_status = out.setdefault(id15(row.get(ref.advocate)), {})
            by_status[str(row.get(ref.status) or "")] = int(row.get("n") or 0)
        return out

    def reward_sums(self, advocate_ids: Sequence[str]) -> dict[str, dict[str, Decimal]]:
        """Advocate id (15) -> reward status -> sum of Amount__c: one aggregate query."""
        rw = self._mapping.reward
        template = (
            f"SELECT {rw.advocate}, {rw.status}, SUM({rw.amount}) total FROM {rw.object}"
            f" WHERE {rw.advocate} IN {{values}} GROUP BY {rw.advocate}, {rw.status}"
        )
        out: dict[str, dict[str, Decimal]] = {}
        for row in self._query_in(template, advocate_ids):
            by_status = out.setdefault(id15(row.get(rw.advocate)), {})
            by_status[str(row.get(rw.status) or "")] = _decimal(row.get("total")) or Decimal(0)
        return out

    # -- rewards ----------------------------------------------------------------------------------------

    def _reward_select(self) -> str:
        rw = self._mapping.reward
        return (
            f"SELECT Id, {rw.external_key}, {rw.status}, {rw.amount}, {rw.advocate}, {rw.referral}, "
            f"{rw.opportunity}, {rw.rule}, {rw.type}, {rw.payable_on}, CreatedDate, LastModifiedDate "
            f"FROM {rw.object}"
        )

    def _reward(self, row: Mapping[str, Any]) -> RewardRow:
        rw = self._mapping.reward
        return RewardRow(
            key=str(row.get(rw.external_key) or f"id:{row['Id']}"),
            status=str(row.get(rw.status) or ""),
            amount=_decimal(row.get(rw.amount)) or Decimal(0),
            id=str(row["Id"]),
            advocate_id=_str(row.get(rw.advocate)),
            referral_id=_str(row.get(rw.referral)),
            opportunity_id=_str(row.get(rw.opportunity)),
            rule=_str(row.get(rw.rule)),
            type=_str(row.get(rw.type)),
            payable_on=_date(row.get(rw.payable_on)),
            created=parse_datetime(row.get("CreatedDate")),
            last_modified=parse_datetime(row.get("LastModifiedDate")),
        )

    def rewards_by_id(self, reward_ids: Sequence[str]) -> list[RewardRow]:
        return [
            self._reward(r)
            for r in self._query_in(f"{self._reward_select()} WHERE Id IN {{values}}", reward_ids)
        ]

    def rewards_by_key(self, keys: Sequence[str]) -> list[RewardRow]:
        rw = self._mapping.reward
        rows: list[dict[str, Any]] = []
        for chunk in chunked_in(sorted(set(keys)), IN_CHARS):
            rows += self._client.query(
                soql(f"{self._reward_select()} WHERE {rw.external_key} IN {{values}}", values=chunk)
            )
        return [self._reward(r) for r in rows]

    def rewards_of(self, advocate_ids: Sequence[str], opportunity_ids: Sequence[str]) -> list[RewardRow]:
        """Rewards of these advocates (for their totals) or these opportunities (one reward per rule and
        opportunity, whichever advocate it went to): one query."""
        rw = self._mapping.reward
        advocates, opps = sorted(set(advocate_ids)), sorted(set(opportunity_ids))
        if not advocates and not opps:
            return []
        if advocates and opps and len(advocates) + len(opps) <= 300:
            rows = self._client.query(
                soql(
                    f"{self._reward_select()} WHERE {rw.advocate} IN {{advocates}} OR {rw.opportunity} IN {{opps}}",
                    advocates=IdList(advocates),
                    opps=IdList(opps),
                )
            )
        else:
            rows = self._query_in(f"{self._reward_select()} WHERE {rw.advocate} IN {{values}}", advocates)
            rows += self._query_in(f"{self._reward_select()} WHERE {rw.opportunity} IN {{values}}", opps)
        unique = {str(r["Id"]): self._reward(r) for r in rows}
        return list(unique.values())

    # -- opportunities and advocates --------------------------------------------------------------------

    def opportunities(self, opportunity_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Opportunity id (15) -> Amount, CloseDate, StageName, IsWon, IsClosed and what the reward rules read."""
        base = [
            "Id",
            "Amount",
            "CloseDate",
            "StageName",
            "IsWon",
            "IsClosed",
            "OwnerId",
            "Owner.Name",
            "Owner.IsActive",
        ]
        seen = {f.lower() for f in base}
        select = base + [f for f in self._opportunity_extra if f.lower() not in seen]
        rows = self._query_in(
            f"SELECT {', '.join(select)} FROM Opportunity WHERE Id IN {{values}}", opportunity_ids
        )
        return {id15(r["Id"]): {k: v for k, v in r.items() if k != "attributes"} for r in rows}

    def advocates(self, advocate_ids: Sequence[str]) -> dict[str, AdvocateRow]:
        adv = self._mapping.advocate
        select = [
            "Id",
            adv.name,
            adv.email,
            adv.email_opt_out,
            adv.owner,
            "Owner.Name",
            "Owner.IsActive",
            adv.program,
            adv.preferred_reward,
            adv.status,
            adv.referral_code,
            adv.total_referrals,
            adv.successful_referrals,
            adv.reward_balance,
        ]
        out: dict[str, AdvocateRow] = {}
        for row in self._query_in(
            f"SELECT {', '.join(select)} FROM {adv.object} WHERE Id IN {{values}}", advocate_ids
        ):
            owner = row.get("Owner") if isinstance(row.get("Owner"), Mapping) else {}
            total, successful = row.get(adv.total_referrals), row.get(adv.successful_referrals)
            balance = _decimal(row.get(adv.reward_balance))
            totals = (
                (int(total), int(successful), balance)
                if total is not None and successful is not None and balance is not None
                else None
            )
            out[id15(row["Id"])] = AdvocateRow(
                id=str(row["Id"]),
                name=_str(row.get(adv.name)),
                email=_str(row.get(adv.email)),
                email_opt_out=bool(row.get(adv.email_opt_out)),
                owner_id=_str(row.get(adv.owner)),
                owner_name=_str((owner or {}).get("Name")),
                program=_str(row.get(adv.program)),
                preferred_reward=_str(row.get(adv.preferred_reward)),
                status=_str(row.get(adv.status)),
                referral_code=_str(row.get(adv.referral_code)),
                totals=totals,
                fields={k: v for k, v in row.items() if k not in ("attributes", "Owner")},
                owner_active=(owner or {}).get("IsActive")
                if isinstance((owner or {}).get("IsActive"), bool)
                else None,
            )
        return out

    def logged_notifications(self, keys: Sequence[str]) -> set[str]:
        """Notification keys already logged as a Task (an email sent before the local state was lost)."""
        wanted = sorted(set(keys))
        if not wanted:
            return set()
        found: set[str] = set()
        for chunk in chunked_in(wanted, IN_CHARS):
            for row in self._client.query(
                soql("SELECT External_Key__c FROM Task WHERE External_Key__c IN {v}", v=chunk)
            ):
                found.add(str(row.get("External_Key__c")))
        return found
