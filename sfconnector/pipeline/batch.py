"""One batch of streaming messages -> one `DecidedBatch` the state store commits in a single transaction.

Bad messages become dead letters, the connector's own writes are skipped, advocate changes invalidate the
lookup cache, gap and overflow events are handed back for reconciliation, and every referral candidate gets
its decision. The checkpoint of each channel covers every message of the batch, whatever became of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from sfconnector.clock import Clock, system_clock
from sfconnector.events import BadEvent, PlatformEvent, RecordChange, StreamEvent, parse_message
from sfconnector.pipeline.candidates import ReferralCandidate, referral_candidates
from sfconnector.pipeline.lifecycle import (
    LifecycleDecider,
    PipelineLookups,
    PipelineRules,
    UnfinishedWrites,
)
from sfconnector.pipeline.lifecycle_reads import LifecycleReader
from sfconnector.pipeline.lookups import BatchLookups, OrgLookups
from sfconnector.pipeline.referrals import DecisionRules, ReferralOutcome, decide_referral
from sfconnector.rules.model import PriorReferral
from sfconnector.rules.routing import MISSING_TARGET_RULE
from sfconnector.state import DecidedBatch, NewDeadLetter, OutboxEntry

log = structlog.get_logger("sfconnector.pipeline")


@dataclass(frozen=True)
class ProcessedBatch:
    decided: DecidedBatch
    outcomes: tuple[ReferralOutcome, ...] = ()
    gaps: tuple[RecordChange, ...] = ()  # GAP_* and GAP_OVERFLOW events: reconcile
    own_changes: int = 0
    duplicates: int = 0
    received: Mapping[str, int] = field(default_factory=dict)


class BatchProcessor:
    """Decides a batch; reads the org only through `OrgLookups` (batched), writes nothing."""

    def __init__(
        self,
        rules: DecisionRules,
        lookups: OrgLookups,
        own_client: str,
        *,
        already_processed: Callable[[str], bool] = lambda _: False,
        clock: Clock = system_clock,
        unfinished_writes: UnfinishedWrites | None = None,
    ) -> None:
        self._rules, self._lookups, self._own = rules, lookups, own_client
        self._seen, self._clock = already_processed, clock
        # Conversions, outcomes, rewards, totals and their emails: on when wiring gives the reward rules and
        # a client to read with (`wiring.decision_rules`/`org_lookups`); routing alone otherwise.
        self._lifecycle: LifecycleDecider | None = None
        if isinstance(rules, PipelineRules) and isinstance(lookups, PipelineLookups):
            reader = LifecycleReader(lookups.querier, rules.mapping, rules.rewards)
            # The outbox's unfinished writes (the daemon's state store): decisions after a restart or a
            # reload see what the process before decided and has not landed.
            self._lifecycle = LifecycleDecider(
                rules, rules.rewards, reader, own_client, unfinished_writes=unfinished_writes
            )

    def process(self, messages: Sequence[Mapping[str, Any]]) -> ProcessedBatch:
        checkpoints: dict[str, int] = {}
        received: dict[str, int] = {}
        dead: list[NewDeadLetter] = []
        events: list[StreamEvent] = []
        originals: dict[str, Mapping[str, Any]] = {}  # event key -> message, kept for dead letters
        keys: list[str] = []
        own = duplicates = 0
        gaps: list[RecordChange] = []
        for message in messages:
            channel = str(message.get("channel", ""))
            received[channel] = received.get(channel, 0) + 1
            replay_id = _replay_id(message)
            if replay_id is not None:
                checkpoints[channel] = max(checkpoints.get(channel, replay_id), replay_id)
            try:
                event = parse_message(message)
            except BadEvent as exc:
                dead.append(NewDeadLetter("event", channel or None, replay_id, dict(message), str(exc)))
                continue
            if self._seen(event.key):
                duplicates += 1
                continue
            keys.append(event.key)
            if isinstance(event, RecordChange):
                if event.is_gap or event.is_overflow:
                    gaps.append(event)
                    continue
                if event.client_name() == self._own:
                    # Our own writes to advocates are their totals, which routing never reads: the cache stays.
                    own += 1
                    continue
                if event.entity == self._rules.mapping.advocate.object:
                    self._lookups.invalidate_advocates(event.record_ids)
            events.append(event)
            originals[event.key] = message
        outcomes, more_dead = self._decide(events, originals)
        dead.extend(more_dead)
        outbox: list[OutboxEntry] = [entry for o in outcomes for entry in o.outbox]
        if self._lifecycle is not None:
            lifecycle = self._lifecycle.decide(events, outcomes, self._clock())
            outbox = [e for e in outbox if e.key not in lifecycle.drop_keys] + lifecycle.outbox
            dead.extend(lifecycle.dead_letters)
        decided = DecidedBatch(
            checkpoints=checkpoints,
            outbox=outbox,
            processed_keys=keys,
            routing_log=[o.log for o in outcomes],
            dead_letters=dead,
        )
        return ProcessedBatch(decided, tuple(outcomes), tuple(gaps), own, duplicates, received)

    def _decide(
        self, events: Sequence[StreamEvent], originals: Mapping[str, Mapping[str, Any]]
    ) -> tuple[list[ReferralOutcome], list[NewDeadLetter]]:
        dead: list[NewDeadLetter] = []
        candidates: list[ReferralCandidate] = []
        for event in events:
            try:
                candidates.extend(referral_candidates([event], self._rules.mapping, self._own, self._clock()))
            except BadEvent as exc:
                dead.append(_dead_event(event, str(exc), originals.get(event.key)))
        candidates = _with_reassignments(candidates, events, self._rules, self._own)
        if not candidates:
            return [], dead
        lookups = self._lookups.fetch(
            codes=[c.raw_code for c in candidates if c.raw_code],
            emails=[c.email for c in candidates],
            exclude_lead_ids=[c.lead_id for c in candidates if c.lead_id],
            fetch_lead_ids=[c.lead_id for c in candidates if c.needs_lead_fetch and c.lead_id],
            owner_ids=[c.current_owner_id or c.standard_owner_id for c in candidates],
        )
        now = self._clock()
        outcomes: list[ReferralOutcome] = []
        # Referrals decided earlier in this batch are not in Salesforce yet: each later candidate sees them
        # as prior referrals of the same person, as it would had they come in an earlier batch (a web form
        # submitted twice must not count twice because both submissions fell in one batch).
        earlier: dict[str, list[tuple[str, PriorReferral]]] = {}
        for candidate in sorted(candidates, key=lambda c: (c.created_at, c.referral_key)):
            email = _email_of(candidate, lookups, self._rules)
            same_person = [p for key, p in earlier.get(email, ()) if key != candidate.referral_key]
            view = lookups
            if same_person:
                prior = {**lookups.prior_referrals}
                prior[email] = (*prior.get(email, ()), *same_person)
                view = replace(lookups, prior_referrals=prior)
            try:
                outcome = decide_referral(candidate, view, self._rules, now)
            except Exception as exc:  # a rule bug must cost one referral, not the daemon
                log.error("routing.decision_failed", source=candidate.source_key, error=repr(exc))
                dead.append(
                    NewDeadLetter(
                        "decision",
                        None,
                        None,
                        {"candidate": candidate.source_key},
                        f"decision failed: {exc!r}",
                    )
                )
                continue
            log.info(
                "routing.decided",
                lead_id=candidate.lead_id,
                referral=candidate.referral_key,
                advocate_id=outcome.log.advocate_id,
                rule=outcome.routing.rule,
                action=outcome.routing.action,
                routed_owner_id=outcome.routed_owner_id,
                attribution=outcome.attribution.kind,
                reason=outcome.routing.reason,
            )
            if outcome.routing.rule == MISSING_TARGET_RULE:
                # The admin named a queue or user the org does not have: the lead kept its standard owner.
                log.warning(
                    "routing.target_missing",
                    lead_id=candidate.lead_id,
                    referral=candidate.referral_key,
                    queue=outcome.routing.queue,
                    user=outcome.routing.user,
                    reason=outcome.routing.reason,
                )
            outcomes.append(outcome)
            if email and outcome.advocate is not None:  # its Referral__c will name the advocate
                earlier.setdefault(email, []).append(
                    (
                        candidate.referral_key,
                        PriorReferral(
                            candidate.referral_key, outcome.advocate.facts.advocate_id, candidate.created_at
                        ),
                    )
                )
        return outcomes, dead


def _email_of(candidate: ReferralCandidate, lookups: BatchLookups, rules: DecisionRules) -> str:
    """The referred person's email as the decision will read it (a late code's lead is fetched)."""
    email = candidate.email
    if candidate.needs_lead_fetch and candidate.lead_id and candidate.lead_id in lookups.leads:
        email = lookups.leads[candidate.lead_id].get(rules.mapping.lead.email)
    return str(email or "").lower()


def _with_reassignments(
    candidates: list[ReferralCandidate], events: Sequence[StreamEvent], rules: DecisionRules, own: str
) -> list[ReferralCandidate]:
    """Let a person's owner change later in the same batch win over routing (see `referral_candidates`)."""
    lead = rules.mapping.lead
    reassigned: dict[str, str] = {}
    for event in events:
        if (
            isinstance(event, RecordChange)
            and event.entity == lead.object
            and event.change_type == "UPDATE"
            and lead.owner in event.changed_fields
            and event.client_name() != own
        ):
            for record_id in event.record_ids:
                reassigned[record_id] = str(event.fields.get(lead.owner))
    if not reassigned:
        return candidates
    return [
        replace(c, manually_reassigned=True, current_owner_id=reassigned[c.lead_id])
        if c.lead_id in reassigned and not c.needs_lead_fetch
        else c
        for c in candidates
    ]


def _replay_id(message: Mapping[str, Any]) -> int | None:
    data = message.get("data")
    event = data.get("event") if isinstance(data, Mapping) else None
    replay_id = event.get("replayId") if isinstance(event, Mapping) else None
    return replay_id if isinstance(replay_id, int) else None


def _dead_event(event: StreamEvent, reason: str, original: Mapping[str, Any] | None) -> NewDeadLetter:
    """A dead letter that keeps the original message, so `deadletters retry` can decide it again."""
    if original is not None:
        return NewDeadLetter("event", event.channel, event.replay_id, dict(original), reason)
    payload: dict[str, Any] = (
        {"event_name": event.event_name, "payload": dict(event.payload)}
        if isinstance(event, PlatformEvent)
        else {"entity": event.entity, "record_ids": list(event.record_ids), "fields": dict(event.fields)}
    )
    return NewDeadLetter("event", event.channel, event.replay_id, payload, reason)
