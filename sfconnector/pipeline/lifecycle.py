"""After routing: conversions, wins, losses and disqualifications move Referral__c; wins earn rewards; advocate
totals are recomputed; advocates hear about each step. One `LifecycleDecider.decide` per batch.

What a batch writes (each an outbox entry with a deterministic key):
- `referral-status:<referral key>:<status>:<event key>`: the Referral__c status and links, a conditional update
  (`expect` the status the decision was made from), so a slower, older decision never overwrites a newer one;
- `reward:<OpportunityId>:<rule>` upserts (and `...:clawback` adjustments, or a Status__c-only rejection);
- `advocate-totals:<AdvocateId>:<digest>`: the three totals, recomputed from the records, never incremented;
- `notify:<record key>:<status>` emails and `task:<referral key>:won` tasks for the owning rep.

Decisions read Salesforce as it is now (batched SOQL, `LifecycleReader`) plus what this process decided in the
last minutes and is still writing (the outbox drains asynchronously), so two batches in a row never decide
from a stale status or total. A referral moves only by `next_referral_status`, so replays and reordered events
decide nothing; a replay of the whole history with the local state lost finds every status and reward already
in place and sends nothing twice (reward emails caused by a person's change are also logged as a Task on the
advocate, which a replay finds).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import structlog

from sfconnector.events import StreamEvent
from sfconnector.pipeline.lifecycle_events import LifecycleSignals, lifecycle_signals
from sfconnector.pipeline.lifecycle_reads import (
    AdvocateRow,
    LifecycleReader,
    RecordOwner,
    ReferralRow,
    RewardRow,
    id15,
    owner_of,
)
from sfconnector.pipeline.lookups import OrgLookups, Querier
from sfconnector.pipeline.pending_writes import (
    PendingTargets,
    PendingVersions,
    pending_targets,
    replay_pending,
)
from sfconnector.pipeline.referrals import DecisionRules, ReferralOutcome
from sfconnector.pipeline.writes import email_entry, rep_task_entry
from sfconnector.rules.lifecycle import (
    WON,
    EventKind,
    ReferralEvent,
    ReferralState,
    StatusDecision,
    next_referral_status,
)
from sfconnector.rules.notifications import (
    AdvocateContact,
    Notification,
    ReferralView,
    RewardView,
    StatusChange,
    decide_notification,
    decide_rep_task,
)
from sfconnector.rules.rewards import (
    APPROVED,
    PAID,
    AdvocateFacts,
    ExistingReward,
    OpportunityReversalFacts,
    RewardDecision,
    RewardRules,
    WonOpportunityFacts,
    decide_clawback,
    decide_rewards,
)
from sfconnector.rules.totals import COUNTED_REFERRAL_STATUSES, totals_from_aggregates
from sfconnector.state import NewDeadLetter, OutboxEntry

log = structlog.get_logger("sfconnector.lifecycle")

# How long a decided write is overlaid on what Salesforce shows (the outbox drains in seconds).
MEMORY_SECONDS = 900.0


@dataclass(frozen=True)
class PipelineRules(DecisionRules):
    """Routing's rules plus the reward rules (None: no rewards section, statuses and emails only)."""

    rewards: RewardRules | None = None


class PipelineLookups(OrgLookups):
    """Routing's lookups, also lending their Salesforce client to the lifecycle's reader."""

    @property
    def querier(self) -> Querier:
        return self._client


@dataclass
class LifecycleResult:
    outbox: list[OutboxEntry] = field(default_factory=list)
    dead_letters: list[NewDeadLetter] = field(default_factory=list)
    drop_keys: set[str] = field(default_factory=set)  # routing writes a replay must not repeat
    status_decisions: list[tuple[str, StatusDecision]] = field(default_factory=list)
    rewards: list[RewardDecision] = field(default_factory=list)


def _money(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01")))


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _opportunity_event(opportunity: Mapping[str, Any]) -> EventKind:
    if opportunity.get("IsWon") is True:
        return "opportunity_won"
    if opportunity.get("IsClosed") is True:
        return "opportunity_lost"
    return "opportunity_reopened"


def _amount(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    return Decimal(str(value))


def _close_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _existing(row: RewardRow) -> ExistingReward:
    return ExistingReward(
        external_key=row.key,
        opportunity_id=row.opportunity_id or "",
        advocate_id=row.advocate_id or "",
        rule=row.rule or "",
        amount=row.amount,
        status=row.status,
        type=row.type,
        referral_id=row.referral_id,
        payable_on=row.payable_on,
    )


def _counted(status: str) -> tuple[bool, bool]:
    """Where a referral status counts: (in Total_Referrals__c, in Successful_Referrals__c)."""
    return status in COUNTED_REFERRAL_STATUSES, status == WON


def _referral_content(row: ReferralRow) -> tuple[Any, ...]:
    return (row.status, id15(row.contact_id), id15(row.opportunity_id))


def _reward_content(row: RewardRow) -> tuple[Any, ...]:
    return (row.status, row.amount.quantize(Decimal("0.01")))


@dataclass
class _Remembered:
    """A record as this process last decided it, and every version it decided (oldest first) that may
    still be on its way to Salesforce."""

    at: float  # monotonic time of the last decision, for expiry
    decided_at: datetime
    row: Any  # ReferralRow | RewardRow
    versions: list[tuple[Any, ...]]


def _memory_wins(remembered: _Remembered, content: tuple[Any, ...], modified: datetime | None) -> bool | None:
    """Whether a remembered decision still overrides what Salesforce shows (None: all of it has landed).

    Salesforce showing one of our versions means that write landed; a later version of ours is still
    coming. Showing none of them: ours are all still coming, unless Salesforce changed after our last
    decision, which only a person (or another system) can have done: theirs wins.
    """
    versions = remembered.versions
    if content in versions:
        # The earliest match: with A -> B -> A decided, Salesforce showing A may be the first A with B and
        # the second A still coming; the remembered row (the second A) then says the same anyway.
        return True if versions.index(content) < len(versions) - 1 else None
    return not (modified is not None and modified > remembered.decided_at)


@dataclass(frozen=True)
class _Unfinished:
    """Records addressed by writes not landed yet: by key, by Salesforce id (15), advocates (15)."""

    referral_keys: frozenset[str] = frozenset()
    referral_ids: frozenset[str] = frozenset()
    reward_keys: frozenset[str] = frozenset()
    reward_ids: frozenset[str] = frozenset()
    advocates: frozenset[str] = frozenset()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Reads the durable outbox: the unfinished writes to these objects, in decision order.
UnfinishedWrites = Callable[[Sequence[str]], Sequence[OutboxEntry]]


class _Memory:
    """What this process decided recently and may still be writing, and what the outbox says a predecessor
    decided and is still writing: overlaid on Salesforce's answers."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self._seconds, self._clock = seconds, clock
        self.referrals: dict[str, _Remembered] = {}
        self.rewards: dict[str, _Remembered] = {}
        self.totals: dict[str, tuple[float, tuple[int, int, Decimal]]] = {}
        self._last: tuple[frozenset[str], tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] | None = None

    def begin(self, batch_keys: frozenset[str]) -> None:
        """A batch decided again (the daemon retries one whose commit failed) starts from the memory it
        started from the first time: its own uncommitted decisions must not make it decide nothing."""
        if self._last is not None and self._last[0] == batch_keys:
            referrals, rewards, totals = self._last[1]
            self.referrals, self.rewards, self.totals = dict(referrals), dict(rewards), dict(totals)
        self._last = (batch_keys, (dict(self.referrals), dict(self.rewards), dict(self.totals)))

    def expire(self, unfinished: _Unfinished | None = None) -> None:
        """Forget decisions older than the memory's span, except those whose writes are still unfinished."""
        horizon = self._clock() - self._seconds
        keep = unfinished or _Unfinished()
        self.referrals = {
            k: v
            for k, v in self.referrals.items()
            if v.at >= horizon or k in keep.referral_keys or id15(v.row.id) in keep.referral_ids
        }
        self.rewards = {
            k: v
            for k, v in self.rewards.items()
            if v.at >= horizon or k in keep.reward_keys or id15(v.row.id) in keep.reward_ids
        }
        self.totals = {k: v for k, v in self.totals.items() if v[0] >= horizon or k in keep.advocates}

    def known(self) -> _Unfinished:
        """The records this memory holds, by key and by Salesforce id."""
        return _Unfinished(
            frozenset(self.referrals),
            frozenset(id15(r.row.id) for r in self.referrals.values() if r.row.id),
            frozenset(self.rewards),
            frozenset(id15(r.row.id) for r in self.rewards.values() if r.row.id),
            frozenset(self.totals),
        )

    def hydrate(self, pending: PendingVersions) -> None:
        """Take in what a predecessor decided and has not landed (see `pending_writes`), for records this
        process has not decided itself."""
        now = self._clock()
        for key, (decided_at, row, versions) in pending.referrals.items():
            if key not in self.referrals and "@{" not in key:
                contents = [_referral_content(v) for v in versions]
                self.referrals[key] = _Remembered(now, decided_at or _EPOCH, row, contents)
        for key, (decided_at, reward, reward_versions) in pending.rewards.items():
            if key not in self.rewards:
                contents = [_reward_content(v) for v in reward_versions]
                self.rewards[key] = _Remembered(now, decided_at or _EPOCH, reward, contents)
        for advocate_id, values in pending.totals.items():
            self.totals.setdefault(advocate_id, (now, values))

    def apply(
        self,
        referrals: Iterable[ReferralRow],
        rewards: Iterable[RewardRow],
        totals: Mapping[str, tuple[int, int, Decimal]],
        landed: tuple[Iterable[str], Iterable[str]],
    ) -> None:
        """Forget what has landed (or was overtaken by a person), then remember this batch's decisions."""
        for key in landed[0]:
            self.referrals.pop(key, None)
        for key in landed[1]:
            self.rewards.pop(key, None)
        now = self._clock()
        for referral in referrals:
            if "@{" not in referral.key:  # a referral whose lead is still being created has no stable key yet
                _remember(self.referrals, referral, _referral_content(referral), now)
        for reward in rewards:
            _remember(self.rewards, reward, _reward_content(reward), now)
        for advocate_id, values in totals.items():
            self.totals[advocate_id] = (now, values)


def _remember(table: dict[str, _Remembered], row: Any, content: tuple[Any, ...], now: float) -> None:
    held = table.get(row.key)
    versions = [*held.versions, content] if held is not None else [content]
    table[row.key] = _Remembered(now, row.last_modified, row, versions)


class LifecycleDecider:
    """Decides the lifecycle writes of a batch; reads through `LifecycleReader` only, writes nothing."""

    def __init__(
        self,
        rules: DecisionRules,
        rewards: RewardRules | None,
        reader: LifecycleReader,
        own_client: str,
        *,
        memory_seconds: float = MEMORY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        unfinished_writes: UnfinishedWrites | None = None,
    ) -> None:
        self._rules, self._rewards, self._reader, self._own = rules, rewards, reader, own_client
        self._memory = _Memory(memory_seconds, monotonic)
        self._unfinished_writes = unfinished_writes

    def decide(
        self, events: Sequence[StreamEvent], outcomes: Sequence[ReferralOutcome], now: datetime
    ) -> LifecycleResult:
        return self.decide_signals(
            lifecycle_signals(events, self._rules.mapping, self._own, now.date()), outcomes, now
        )

    def decide_signals(
        self, signals: LifecycleSignals, outcomes: Sequence[ReferralOutcome], now: datetime
    ) -> LifecycleResult:
        """The same decisions from triggers built elsewhere (reconciliation builds them from SOQL)."""
        if not signals and not any(o.advocate is not None for o in outcomes):
            return LifecycleResult()
        self._memory.begin(
            frozenset(signals.event_keys) | frozenset(o.candidate.source_key for o in outcomes)
        )
        self._memory.expire(self._overlay_unfinished())
        batch = _Batch(self._rules, self._rewards, self._reader, self._memory, signals, outcomes, now)
        result = batch.run()
        self._memory.apply(
            batch.decided_referrals.values(),
            batch.decided_rewards.values(),
            batch.written_totals,
            (batch.landed_referrals, batch.landed_rewards),
        )
        return result

    def _overlay_unfinished(self) -> _Unfinished | None:
        """Bring the outbox's unfinished writes this memory does not hold into it (after a restart or a
        reload: the writes of the process before), reading only the records they address; returns what
        is unfinished, which the memory keeps however long the writes take."""
        if self._unfinished_writes is None:
            return None
        m = self._rules.mapping
        entries = self._unfinished_writes([m.referral.object, m.reward.object, m.advocate.object])
        targets = pending_targets(entries, m)
        known = self._memory.known()
        missing = PendingTargets(
            tuple(k for k in targets.referral_keys if k not in known.referral_keys),
            tuple(i for i in targets.referral_ids if id15(i) not in known.referral_ids),
            tuple(k for k in targets.reward_keys if k not in known.reward_keys),
            tuple(i for i in targets.reward_ids if id15(i) not in known.reward_ids),
        )
        advocates = frozenset(
            id15(e.record_id) for e in entries if e.sobject == m.advocate.object and e.record_id
        )
        if missing or advocates - known.advocates:
            referrals = (
                self._reader.referrals_by(ids=missing.referral_ids, keys=missing.referral_keys)
                if missing.referral_ids or missing.referral_keys
                else []
            )
            rewards = [
                *(self._reader.rewards_by_key(missing.reward_keys) if missing.reward_keys else []),
                *(self._reader.rewards_by_id(missing.reward_ids) if missing.reward_ids else []),
            ]
            self._memory.hydrate(replay_pending(entries, referrals, rewards, m))
            log.info(
                "lifecycle.unfinished_writes_overlaid",
                referrals=len(missing.referral_keys) + len(missing.referral_ids),
                rewards=len(missing.reward_keys) + len(missing.reward_ids),
            )
        return _Unfinished(
            frozenset(targets.referral_keys),
            frozenset(id15(i) for i in targets.referral_ids),
            frozenset(targets.reward_keys),
            frozenset(id15(i) for i in targets.reward_ids),
            advocates,
        )


class _Batch:
    """The working set of one batch: rows read, overlaid, and changed by the decisions made so far."""

    def __init__(
        self,
        rules: DecisionRules,
        rewards: RewardRules | None,
        reader: LifecycleReader,
        memory: _Memory,
        signals: LifecycleSignals,
        outcomes: Sequence[ReferralOutcome],
        now: datetime,
    ) -> None:
        self.mapping, self.templates, self.reward_rules = rules.mapping, rules.notifications, rewards
        self.reader, self.memory = reader, memory
        self.signals, self.outcomes, self.now = signals, outcomes, now
        self.result = LifecycleResult()
        self.referrals: dict[str, ReferralRow] = {}  # by key: Salesforce overlaid with memory and this batch
        self.rewards: dict[str, RewardRow] = {}
        self.decided_referrals: dict[str, ReferralRow] = {}
        self.decided_rewards: dict[str, RewardRow] = {}
        self.written_totals: dict[str, tuple[int, int, Decimal]] = {}
        self.touched: set[str] = set()  # advocate ids (15)
        self.dirty: set[str] = set()  # advocates whose totals this batch may change
        self.aggregates_read = False
        self.advocates: dict[str, AdvocateRow] = {}
        self.opportunity_owners: dict[str, RecordOwner] = {}  # opportunity id (15) -> its owner
        self.event_keys_by_advocate: dict[str, set[str]] = {}
        self.status_changes: list[tuple[ReferralRow, StatusDecision]] = []  # told once advocates are read
        # What Salesforce holds for the keys read, and its aggregates per advocate: totals are the aggregates
        # with each overlaid key's Salesforce version swapped for the newest one (see `_referral_counts`).
        self.sf_referrals: dict[str, ReferralRow] = {}
        self.sf_rewards: dict[str, RewardRow] = {}
        self.referral_agg: dict[str, dict[str, int]] = {}
        self.reward_agg: dict[str, dict[str, Decimal]] = {}
        self.overlay_referrals: set[str] = set(self.memory.referrals)
        self.overlay_rewards: set[str] = set(self.memory.rewards)
        self.lead_index: dict[str, str] | None = None
        self.landed_referrals: set[str] = set()  # remembered decisions Salesforce now fully shows
        self.landed_rewards: set[str] = set()
        for remembered in self.memory.referrals.values():
            self.referrals[remembered.row.key] = remembered.row
        for remembered in self.memory.rewards.values():
            self.rewards[remembered.row.key] = remembered.row

    # -- working set ------------------------------------------------------------------------------------

    def _put_referral(self, row: ReferralRow) -> None:
        """A referral as Salesforce shows it, unless this process decided it later (see `_memory_wins`)."""
        self.sf_referrals[row.key] = row
        self._overlay(
            row,
            self.referrals,
            self.decided_referrals,
            self.memory.referrals.get(row.key),
            _referral_content(row),
            self.landed_referrals,
        )

    def _put_reward(self, row: RewardRow) -> None:
        self.sf_rewards[row.key] = row
        self._overlay(
            row,
            self.rewards,
            self.decided_rewards,
            self.memory.rewards.get(row.key),
            _reward_content(row),
            self.landed_rewards,
        )

    @staticmethod
    def _overlay(
        row: Any,
        current: dict[str, Any],
        decided: Mapping[str, Any],
        remembered: _Remembered | None,
        content: tuple[Any, ...],
        landed: set[str],
    ) -> None:
        """Keep this process's own version of a record over Salesforce's while its write may not have landed."""
        held = current.get(row.key)
        if row.key in decided and held is not None:  # decided in this very batch
            current[row.key] = replace(held, id=held.id or row.id)
            return
        wins = _memory_wins(remembered, content, row.last_modified) if remembered else False
        if wins and held is not None:
            current[row.key] = replace(held, id=held.id or row.id)
        else:
            current[row.key] = row
            if remembered is not None:
                landed.add(row.key)

    def _decided_referral(self, row: ReferralRow) -> None:
        before = self.referrals.get(row.key)
        if before is None or _counted(before.status) != _counted(row.status):
            self.dirty.add(id15(row.advocate_id))
        row = replace(row, last_modified=self.now)
        self.referrals[row.key] = row
        self.decided_referrals[row.key] = row
        self.overlay_referrals.add(row.key)

    def _decided_reward(self, row: RewardRow) -> None:
        self.dirty.add(id15(row.advocate_id))
        row = replace(row, last_modified=self.now)
        self.rewards[row.key] = row
        self.decided_rewards[row.key] = row
        self.overlay_rewards.add(row.key)

    def _touch(self, advocate_id: str | None, event_key: str) -> None:
        if advocate_id:
            self.touched.add(id15(advocate_id))
            self.event_keys_by_advocate.setdefault(id15(advocate_id), set()).add(event_key)

    def _by_lead(self, lead_id: str) -> ReferralRow | None:
        if self.lead_index is None:  # built once: lead events never change which lead a referral is of
            self.lead_index = {id15(r.lead_id): r.key for r in self.referrals.values() if r.lead_id}
        key = self.lead_index.get(id15(lead_id))
        return self.referrals.get(key) if key else None

    # -- the batch --------------------------------------------------------------------------------------

    def run(self) -> LifecycleResult:
        signals = self.signals
        routed_leads = [o.candidate.lead_id for o in self.outcomes if o.candidate.lead_id]
        lead_ids = [c.lead_id for c in signals.conversions] + [q.lead_id for q in signals.disqualified]
        in_salesforce = self.reader.referrals_of([*lead_ids, *routed_leads], list(signals.opportunities))
        existing_keys = {r.key for r in in_salesforce}
        for row in in_salesforce:
            self._put_referral(row)
        self._routed(existing_keys)
        reward_rows = (
            self.reader.rewards_by_id([r.reward_id for r in signals.rewards]) if signals.rewards else []
        )
        for reward in reward_rows:
            self._put_reward(reward)
            self._touch(reward.advocate_id, "reward:" + (reward.id or ""))
            self.dirty.add(id15(reward.advocate_id))
        for conversion in signals.conversions:
            self._lead_event(
                conversion.lead_id,
                ReferralEvent("lead_converted", conversion.contact_id, conversion.opportunity_id),
                conversion.event_key,
            )
        for disqualified in signals.disqualified:
            self._lead_event(disqualified.lead_id, ReferralEvent("lead_disqualified"), disqualified.event_key)
        wanted = {id15(opp): opp for opp in signals.opportunities}
        linked: dict[str, list[ReferralRow]] = {}
        for row in self.referrals.values():
            opp = wanted.get(id15(row.opportunity_id)) if row.opportunity_id else None
            if opp is not None:
                linked.setdefault(opp, []).append(row)
        for opp, rows in linked.items():
            for row in rows:
                self._touch(row.advocate_id, signals.opportunities[opp].event_key)
        opportunities = self.reader.opportunities(list(linked)) if linked else {}
        for opp15, read in opportunities.items():
            owner = owner_of(read)
            if owner is not None:
                self.opportunity_owners[opp15] = owner
        if not self.touched:
            return self.result
        self._read_advocates(list(linked))
        for opp_id, rows in linked.items():
            opportunity = opportunities.get(id15(opp_id))
            if opportunity is None:
                continue
            change = signals.opportunities[opp_id]
            for row in rows:
                self._opportunity_event(row.key, opp_id, opportunity, change.event_key, change.changed_on)
        for row, decision in self.status_changes:
            advocate = self.advocates.get(id15(row.advocate_id))
            if advocate is not None:
                self._send_status(row, decision, advocate)
        self._reward_changes(reward_rows)
        self._totals()
        return self.result

    def _read_advocates(self, opportunity_ids: list[str]) -> None:
        """The touched advocates and the rewards of the opportunities."""
        self.advocates = self.reader.advocates(sorted(self.touched))
        for reward in self.reader.rewards_of([], opportunity_ids) if opportunity_ids else []:
            self._put_reward(reward)

    def _aggregates(self) -> None:
        """Read once, when a total or a tier is needed (a batch of conversions needs neither)."""
        if self.aggregates_read:
            return
        self.aggregates_read = True
        touched = sorted(self.touched)
        self.referral_agg = self.reader.referral_counts(touched)
        self.reward_agg = self.reader.reward_sums(touched)
        unread_referrals = [
            k
            for k in self.overlay_referrals
            if k not in self.sf_referrals
            and id15(self.referrals[k].advocate_id) in self.touched
            and "@{" not in k
        ]
        for row in self.reader.referrals_by(keys=unread_referrals) if unread_referrals else []:
            self._put_referral(row)
        unread_rewards = [
            k
            for k in self.overlay_rewards
            if k not in self.sf_rewards and id15(self.rewards[k].advocate_id) in self.touched
        ]
        for reward in self.reader.rewards_by_key(unread_rewards) if unread_rewards else []:
            self._put_reward(reward)

    def _referral_counts(self, advocate_id: str) -> dict[str, int]:
        """The aggregates with the Salesforce version of every overlaid record swapped for the newest one."""
        self._aggregates()
        counts = dict(self.referral_agg.get(advocate_id, {}))
        for key in self.overlay_referrals:
            stored, current = self.sf_referrals.get(key), self.referrals.get(key)
            if stored is not None and id15(stored.advocate_id) == advocate_id:
                counts[stored.status] = counts.get(stored.status, 0) - 1
            if current is not None and id15(current.advocate_id) == advocate_id:
                counts[current.status] = counts.get(current.status, 0) + 1
        return counts

    def _reward_sums(self, advocate_id: str) -> dict[str, Decimal]:
        self._aggregates()
        sums = dict(self.reward_agg.get(advocate_id, {}))
        for key in self.overlay_rewards:
            stored, current = self.sf_rewards.get(key), self.rewards.get(key)
            if stored is not None and id15(stored.advocate_id) == advocate_id:
                sums[stored.status] = sums.get(stored.status, Decimal(0)) - stored.amount
            if current is not None and id15(current.advocate_id) == advocate_id:
                sums[current.status] = sums.get(current.status, Decimal(0)) + current.amount
        return sums

    # -- routing replays --------------------------------------------------------------------------------

    def _routed(self, existing_keys: set[str]) -> None:
        """New referrals join the working set; a referral Salesforce already has is a replayed routing."""
        ref = self.mapping.referral
        for outcome in self.outcomes:
            c = outcome.candidate
            if c.lead_id and c.referral_key in existing_keys:
                # Routing already landed (a replay with the local state lost): its referral may have moved on
                # since, and its "received" email went out then.
                self.result.drop_keys.update(
                    e.key for e in outcome.outbox if e.op == "email" or e.key == f"referral:{c.referral_key}"
                )
                continue
            upsert = next((e for e in outcome.outbox if e.sobject == ref.object), None)
            if upsert is None:
                continue
            fields = upsert.fields
            row = ReferralRow(
                key=str(fields.get(ref.external_key)),
                status=str(fields.get(ref.status) or ""),
                advocate_id=fields.get(ref.advocate),
                lead_id=c.lead_id,
                contact_id=fields.get(ref.contact),
                opportunity_id=fields.get(ref.opportunity),
                channel=c.channel,
                name=" ".join(
                    str(c.fields.get(f) or "")
                    for f in (self.mapping.lead.first_name, self.mapping.lead.last_name)
                ).strip()
                or None,
                company=c.fields.get(self.mapping.lead.company),
            )
            self._decided_referral(row)
            self._touch(row.advocate_id, c.source_key)

    # -- referral status --------------------------------------------------------------------------------

    def _lead_event(self, lead_id: str, event: ReferralEvent, event_key: str) -> None:
        row = self._by_lead(lead_id)
        if row is None:
            return  # not a referral lead
        self._apply(row, event, event_key)

    def _apply(self, row: ReferralRow, event: ReferralEvent, event_key: str) -> StatusDecision | None:
        decision = next_referral_status(ReferralState(row.status, row.contact_id, row.opportunity_id), event)
        if decision is None:
            return None
        ref = self.mapping.referral
        fields: dict[str, Any] = {ref.status: decision.status}
        if decision.contact_id != row.contact_id:
            fields[ref.contact] = decision.contact_id
        if decision.opportunity_id != row.opportunity_id:
            fields[ref.opportunity] = decision.opportunity_id
        key = f"referral-status:{row.key}:{decision.status}:{event_key}"
        if row.id:
            entry = OutboxEntry(
                key, "update", ref.object, fields, record_id=row.id, expect={ref.status: row.status}
            )
        else:  # decided by this process and still being written: the upsert lands first (outbox order)
            entry = OutboxEntry(
                key,
                "upsert",
                ref.object,
                {ref.external_key: row.key, **fields},
                external_id_field=ref.external_key,
                expect={ref.status: row.status},
            )
        self.result.outbox.append(entry)
        self.result.status_decisions.append((row.key, decision))
        log.info(
            "lifecycle.status_decided",
            referral=row.key,
            status=decision.status,
            previous=decision.previous_status,
            reason=decision.reason,
        )
        updated = replace(
            row,
            status=decision.status,
            contact_id=decision.contact_id,
            opportunity_id=decision.opportunity_id,
        )
        self._decided_referral(updated)
        self._touch(row.advocate_id, event_key)
        if decision.status_changed:
            self.status_changes.append((updated, decision))
        return decision

    def _opportunity_event(
        self, key: str, opp_id: str, opportunity: Mapping[str, Any], event_key: str, changed_on: date
    ) -> None:
        row = self.referrals[key]
        kind = _opportunity_event(opportunity)
        decision = self._apply(row, ReferralEvent(kind, opportunity_id=opp_id), event_key)
        row = self.referrals[key]
        rules = self.reward_rules
        if rules is None or not row.advocate_id:
            return
        if kind == "opportunity_won" and row.status == WON:
            self._won(rules, row, opp_id, opportunity, changed_on)
        elif decision is not None and decision.clawback:
            self._clawback(rules, row, opp_id, kind, changed_on)

    # -- rewards ----------------------------------------------------------------------------------------

    def _rewards_of(self, opp_id: str) -> list[ExistingReward]:
        return [_existing(r) for r in self.rewards.values() if id15(r.opportunity_id) == id15(opp_id)]

    def _advocate_facts(self, advocate: AdvocateRow, referral_key: str) -> AdvocateFacts:
        won = self._referral_counts(id15(advocate.id)).get(WON, 0)
        this = self.referrals.get(referral_key)
        if this is not None and this.status == WON and id15(this.advocate_id) == id15(advocate.id):
            won -= 1  # tiers count the advocate's other successful referrals
        return AdvocateFacts(
            id=advocate.id,
            program=advocate.program,
            preferred_reward=advocate.preferred_reward,
            successful_referrals=max(won, 0),
            status=advocate.status,
            fields=advocate.fields,
        )

    def _won(
        self,
        rules: RewardRules,
        row: ReferralRow,
        opp_id: str,
        opportunity: Mapping[str, Any],
        changed_on: date,
    ) -> None:
        advocate = self.advocates.get(id15(row.advocate_id))
        if advocate is None:
            return
        facts = WonOpportunityFacts(
            opportunity_id=opp_id,
            amount=_amount(opportunity.get("Amount")),
            stage=str(opportunity.get("StageName") or ""),
            is_won=True,
            close_date=_close_date(opportunity.get("CloseDate")),
            won_on=changed_on,
            referral_id=row.id,
            referral_channel=row.channel,
            fields=opportunity,
        )
        try:
            decisions = decide_rewards(
                facts,
                self._advocate_facts(advocate, row.key),
                self._rewards_of(opp_id),
                rules,
                changed_on,
            )
        except Exception as exc:  # a rule bug costs this reward (dead letter), not the daemon
            self._dead(f"reward decision failed for {opp_id}: {exc!r}", {"opportunity": opp_id})
            return
        for decision in decisions:
            self._write_reward(decision, row)
            if decision.status == APPROVED:
                self._notify_reward(
                    row,
                    advocate,
                    decision.external_key,
                    decision.amount,
                    decision.type,
                    APPROVED,
                    decision.payable_on,
                )

    def _clawback(
        self, rules: RewardRules, row: ReferralRow, opp_id: str, kind: EventKind, changed_on: date
    ) -> None:
        existing = self._rewards_of(opp_id)
        originals = [
            r
            for r in self.rewards.values()
            if id15(r.opportunity_id) == id15(opp_id) and not r.key.endswith(":clawback")
        ]
        created = [r.created.date() for r in originals if r.created is not None]
        won_on = min(created) if created else changed_on
        reversal = OpportunityReversalFacts(
            opp_id, "lost" if kind == "opportunity_lost" else "reopened", won_on, changed_on
        )
        for decision in decide_clawback(reversal, existing, rules):
            self._write_reward(decision, row)

    def _write_reward(self, decision: RewardDecision, row: ReferralRow) -> None:
        rw = self.mapping.reward
        held = self.rewards.get(decision.external_key)
        log.info(
            "rewards.decided",
            reward=decision.external_key,
            action=decision.action,
            amount=str(decision.amount),
            status=decision.status,
            rule=decision.rule,
            reason=decision.reason,
        )
        self.result.rewards.append(decision)
        if decision.action == "reject":
            status_only = {rw.status: decision.status}
            if held is not None and held.id:
                entry = OutboxEntry(
                    f"reward-status:{decision.external_key}:{decision.status}",
                    "update",
                    rw.object,
                    status_only,
                    record_id=held.id,
                    expect={rw.status: held.status},
                )
            else:
                entry = OutboxEntry(
                    f"reward-status:{decision.external_key}:{decision.status}",
                    "upsert",
                    rw.object,
                    {rw.external_key: decision.external_key, **status_only},
                    external_id_field=rw.external_key,
                )
            self.result.outbox.append(entry)
            if held is not None:
                self._decided_reward(replace(held, status=decision.status))
            return
        fields: dict[str, Any] = {
            rw.external_key: decision.external_key,
            rw.advocate: decision.advocate_id,
            rw.opportunity: decision.opportunity_id,
            rw.amount: _money(decision.amount),
            rw.type: decision.type,
            rw.status: decision.status,
            rw.rule: decision.rule,
            rw.payable_on: decision.payable_on.isoformat() if decision.payable_on else None,
        }
        if decision.referral_id or row.id:
            fields[rw.referral] = decision.referral_id or row.id
        self.result.outbox.append(
            OutboxEntry(decision.external_key, "upsert", rw.object, fields, external_id_field=rw.external_key)
        )
        self._decided_reward(
            RewardRow(
                key=decision.external_key,
                status=decision.status,
                amount=decision.amount,
                advocate_id=decision.advocate_id,
                referral_id=decision.referral_id or row.id,
                opportunity_id=decision.opportunity_id,
                rule=decision.rule,
                type=decision.type,
                payable_on=decision.payable_on,
                created=self.now,
            )
        )

    def _reward_changes(self, reward_rows: Sequence[RewardRow]) -> None:
        """A person approved or paid a reward: tell the advocate once, logged as a Task a replay finds."""
        by_id = {id15(r.id): r for r in reward_rows}
        wanted: list[tuple[RewardRow, str]] = []
        for change in self.signals.rewards:
            reward = by_id.get(id15(change.reward_id))
            if reward is None or change.status not in (APPROVED, PAID) or reward.status != change.status:
                continue  # deleted since, or its status moved on again: that later change speaks for itself
            wanted.append((reward, change.status))
        if not wanted:
            return
        logged = self.reader.logged_notifications([f"notify:{r.key}:{s}" for r, s in wanted])
        known = {id15(r.id) for r in self.referrals.values() if r.id}
        unread = [str(r.referral_id) for r, _ in wanted if r.referral_id and id15(r.referral_id) not in known]
        for row in self.reader.referrals_by(ids=unread) if unread else []:
            self._put_referral(row)
        for reward, status in wanted:
            if f"notify:{reward.key}:{status}" in logged:
                continue
            advocate = self.advocates.get(id15(reward.advocate_id))
            referral = next(
                (r for r in self.referrals.values() if r.id and id15(r.id) == id15(reward.referral_id)), None
            )
            if advocate is None or referral is None or reward.key.endswith(":clawback"):
                continue
            self._notify_reward(
                referral,
                advocate,
                reward.key,
                reward.amount,
                reward.type,
                status,
                reward.payable_on,
                log_task=True,
            )

    # -- notifications ----------------------------------------------------------------------------------

    def _contact(self, advocate: AdvocateRow) -> AdvocateContact:
        return AdvocateContact(
            id=advocate.id,
            name=advocate.name,
            email=advocate.email,
            email_opt_out=advocate.email_opt_out,
            referral_code=advocate.referral_code,
            program=advocate.program,
        )

    def _person(self, row: ReferralRow, advocate: AdvocateRow) -> RecordOwner | None:
        """Who works this referral now, for the rep task and the advocate's email: the rep who owns its
        opportunity (who won it), else the advocate's owner; never an inactive user, never a queue."""
        candidates = [
            self.opportunity_owners.get(id15(row.opportunity_id)) if row.opportunity_id else None,
            RecordOwner(advocate.owner_id, advocate.owner_name, advocate.owner_active)
            if advocate.owner_id
            else None,
        ]
        return next((c for c in candidates if c is not None and c.is_active_user), None)

    def _view(self, row: ReferralRow, advocate: AdvocateRow) -> ReferralView:
        person = self._person(row, advocate)
        return ReferralView(
            key=row.key,
            name=row.name,
            company=row.company,
            channel=row.channel,
            status=row.status,
            lead_id=row.lead_id,
            contact_id=row.contact_id,
            opportunity_id=row.opportunity_id,
            owner_name=person.name if person else None,
        )

    def _send_status(self, row: ReferralRow, decision: StatusDecision, advocate: AdvocateRow) -> None:
        change = StatusChange(self._view(row, advocate), decision.status, decision.previous_status)
        contact = self._contact(advocate)
        self._email(decide_notification(change, contact, self.templates))
        person = self._person(row, advocate)
        task = decide_rep_task(change, contact, person.id if person else None, self.templates)
        if task is not None:
            self.result.outbox.append(rep_task_entry(task, self.now.astimezone(UTC).date()))

    def _notify_reward(
        self,
        row: ReferralRow,
        advocate: AdvocateRow,
        key: str,
        amount: Decimal,
        type_: str | None,
        status: str,
        payable_on: date | None,
        *,
        log_task: bool = False,
    ) -> None:
        view = self._view(row, advocate)
        change = StatusChange(view, status, None, RewardView(key, amount, type_, status, payable_on))
        notification = decide_notification(change, self._contact(advocate), self.templates)
        self._email(notification)
        if log_task and isinstance(notification, Notification):
            self.result.outbox.append(
                OutboxEntry(
                    key=f"log:{notification.key}",
                    op="create_once",
                    sobject="Task",
                    fields={
                        "Subject": f"Email: {notification.subject}"[:255],
                        "Description": notification.body,
                        "WhatId": advocate.id,
                        "Status": "Completed",
                        "Priority": "Normal",
                        "ActivityDate": self.now.astimezone(UTC).date().isoformat(),
                        "External_Key__c": notification.key,
                    },
                    external_id_field="External_Key__c",
                )
            )

    def _email(self, notification: object) -> None:
        if isinstance(notification, Notification):
            self.result.outbox.append(email_entry(notification))
        elif notification is not None:
            log.info(
                "notification.skipped",
                key=getattr(notification, "key", None),
                reason=getattr(notification, "reason", None),
            )

    # -- totals -----------------------------------------------------------------------------------------

    def _totals(self) -> None:
        adv = self.mapping.advocate
        for advocate_id in sorted(self.touched):
            advocate = self.advocates.get(advocate_id)
            never_written = (
                advocate is not None and advocate.totals is None and advocate_id not in self.memory.totals
            )
            if advocate is None or (advocate_id not in self.dirty and not never_written):
                continue
            totals = totals_from_aggregates(
                self._referral_counts(advocate_id), self._reward_sums(advocate_id)
            )
            values = (totals.total_referrals, totals.successful_referrals, totals.reward_balance)
            remembered = self.memory.totals.get(advocate_id)
            known = remembered[1] if remembered else advocate.totals
            if known == values:
                continue
            digest = _digest(
                [advocate_id, str(values), sorted(self.event_keys_by_advocate.get(advocate_id, ()))]
            )
            self.result.outbox.append(
                OutboxEntry(
                    key=f"advocate-totals:{advocate.id}:{digest}",
                    op="update",
                    sobject=adv.object,
                    record_id=advocate.id,
                    fields={
                        adv.total_referrals: values[0],
                        adv.successful_referrals: values[1],
                        adv.reward_balance: _money(values[2]),
                    },
                )
            )
            self.written_totals[advocate_id] = values
            log.info(
                "advocate.totals_decided",
                advocate_id=advocate.id,
                total=values[0],
                successful=values[1],
                balance=str(values[2]),
            )

    def _dead(self, reason: str, payload: Mapping[str, Any]) -> None:
        log.error("lifecycle.decision_failed", reason=reason)
        self.result.dead_letters.append(NewDeadLetter("decision", None, None, dict(payload), reason))
