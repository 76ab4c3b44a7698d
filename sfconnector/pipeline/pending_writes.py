"""What a predecessor decided and could not land yet, as the lifecycle must see it after a restart or reload.

The outbox keeps every decided write until Salesforce has it. A process that starts again reads the
unfinished referral, reward and advocate-totals writes from it (`StateStore.unfinished_outbox`) and replays
them, in decision order, over the records as Salesforce shows them: each record's successive versions are
what the in-process memory would have held had the process never stopped. Pure: rows and entries in,
versions out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sfconnector.mapping.model import SchemaMapping
from sfconnector.pipeline.lifecycle_reads import ReferralRow, RewardRow, _date, _decimal, _str, id15
from sfconnector.state import OutboxEntry


@dataclass(frozen=True)
class PendingTargets:
    """The records unfinished writes address, to read from Salesforce before replaying them."""

    referral_keys: tuple[str, ...] = ()
    referral_ids: tuple[str, ...] = ()
    reward_keys: tuple[str, ...] = ()
    reward_ids: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.referral_keys or self.referral_ids or self.reward_keys or self.reward_ids)


@dataclass
class PendingVersions:
    """Per record key: when its first unfinished write was decided, its newest version, every version."""

    referrals: dict[str, tuple[datetime | None, ReferralRow, list[ReferralRow]]] = field(default_factory=dict)
    rewards: dict[str, tuple[datetime | None, RewardRow, list[RewardRow]]] = field(default_factory=dict)
    totals: dict[str, tuple[int, int, Decimal]] = field(default_factory=dict)  # advocate id (15) -> last


def _key(entry: OutboxEntry) -> str | None:
    key = entry.fields.get(entry.external_id_field or "") if entry.op == "upsert" else None
    return str(key) if key and "@{" not in str(key) else None


def pending_targets(entries: Sequence[OutboxEntry], mapping: SchemaMapping) -> PendingTargets:
    ref, rw = mapping.referral.object, mapping.reward.object
    keys: dict[str, set[str]] = {ref: set(), rw: set()}
    ids: dict[str, set[str]] = {ref: set(), rw: set()}
    for entry in entries:
        if entry.sobject not in keys:
            continue
        if entry.op == "update" and entry.record_id:
            ids[entry.sobject].add(entry.record_id)
        elif (key := _key(entry)) is not None:
            keys[entry.sobject].add(key)
    return PendingTargets(
        tuple(sorted(keys[ref])), tuple(sorted(ids[ref])), tuple(sorted(keys[rw])), tuple(sorted(ids[rw]))
    )


def replay_pending(
    entries: Sequence[OutboxEntry],
    referrals: Sequence[ReferralRow],
    rewards: Sequence[RewardRow],
    mapping: SchemaMapping,
) -> PendingVersions:
    """Apply the unfinished writes, oldest first, to the records Salesforce has (or to nothing, for an upsert
    that will create its record). A conditional write whose expected values the record no longer has is
    left out: the writer will skip it too (an upsert's expectation holds for a record not created yet)."""
    out = PendingVersions()
    referral_rows = {r.key: r for r in referrals}
    referral_keys = {id15(r.id): r.key for r in referrals if r.id}
    reward_rows = {r.key: r for r in rewards}
    reward_keys = {id15(r.id): r.key for r in rewards if r.id}
    adv = mapping.advocate
    for entry in entries:
        if entry.sobject == mapping.referral.object:
            key = referral_keys.get(id15(entry.record_id)) if entry.op == "update" else _key(entry)
            if key is None:
                continue
            held = out.referrals.get(key)
            existing = held[1] if held else referral_rows.get(key)
            row = existing or ReferralRow(key=key, status="")
            if existing is not None and not _expected(entry, {mapping.referral.status: row.status}):
                continue
            row = _referral(row, entry.fields, mapping)
            out.referrals[key] = (
                held[0] if held else entry.created_at,
                row,
                [*(held[2] if held else []), row],
            )
        elif entry.sobject == mapping.reward.object:
            key = reward_keys.get(id15(entry.record_id)) if entry.op == "update" else _key(entry)
            if key is None:
                continue
            held_reward = out.rewards.get(key)
            existing_reward = held_reward[1] if held_reward else reward_rows.get(key)
            reward = existing_reward or RewardRow(
                key=key, status="", amount=Decimal(0), created=entry.created_at
            )
            if existing_reward is not None and not _expected(entry, {mapping.reward.status: reward.status}):
                continue
            reward = _reward(reward, entry.fields, mapping)
            versions = [*(held_reward[2] if held_reward else []), reward]
            out.rewards[key] = (held_reward[0] if held_reward else entry.created_at, reward, versions)
        elif entry.sobject == adv.object and entry.op == "update" and adv.total_referrals in entry.fields:
            f = entry.fields
            out.totals[id15(entry.record_id)] = (
                int(f.get(adv.total_referrals) or 0),
                int(f.get(adv.successful_referrals) or 0),
                _decimal(f.get(adv.reward_balance)) or Decimal(0),
            )
    return out


def _expected(entry: OutboxEntry, current: Mapping[str, Any]) -> bool:
    return all(current.get(name, value) == value for name, value in (entry.expect or {}).items())


def _referral(row: ReferralRow, fields: Mapping[str, Any], mapping: SchemaMapping) -> ReferralRow:
    ref = mapping.referral
    changes: dict[str, Any] = {}
    for name, attribute in (
        (ref.status, "status"),
        (ref.advocate, "advocate_id"),
        (ref.lead, "lead_id"),
        (ref.contact, "contact_id"),
        (ref.opportunity, "opportunity_id"),
        (ref.channel, "channel"),
    ):
        if name in fields:
            value = _str(fields[name])
            changes[attribute] = value or "" if attribute == "status" else value
    return replace(row, **changes)


def _reward(row: RewardRow, fields: Mapping[str, Any], mapping: SchemaMapping) -> RewardRow:
    rw = mapping.reward
    changes: dict[str, Any] = {}
    for name, attribute in (
        (rw.status, "status"),
        (rw.advocate, "advocate_id"),
        (rw.referral, "referral_id"),
        (rw.opportunity, "opportunity_id"),
        (rw.rule, "rule"),
        (rw.type, "type"),
    ):
        if name in fields:
            value = _str(fields[name])
            changes[attribute] = value or "" if attribute == "status" else value
    if rw.amount in fields:
        changes["amount"] = _decimal(fields[rw.amount]) or Decimal(0)
    if rw.payable_on in fields:
        changes["payable_on"] = _date(fields[rw.payable_on])
    return replace(row, **changes)
