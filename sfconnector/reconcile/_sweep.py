"""The reconciliation sweep: read the org by SOQL, find what the event stream missed, repair through the outbox.

    referrals (keyset pages) ─► wrong owners ─► conditional owner updates
                             └► status lags, won opportunities without rewards ─┐
    referral leads (keyset pages) ─► leads without a Referral__c ───────────────┤ rebuilt change events,
                                                                               │ 200 at a time
                                       the daemon's BatchProcessor (routing + lifecycle) ◄┘
                                                         ─► StateStore.commit_batch (the outbox)

Repairs are the daemon's own decisions, made by the daemon's own `BatchProcessor` from the change events the
missed stretch would have carried (`_replay.py`), so they carry the daemon's outbox keys (`referral:lead:<Id>`,
`lead-route:<Id>`, tasks, emails, `reward:<Opp>:<rule>`, totals): `commit_batch`'s INSERT OR IGNORE makes a
second sweep, or a sweep racing the stream, add nothing. Owner repairs are conditional updates that apply
only while the lead still has the owner the sweep saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

import structlog

from sfconnector.clock import Clock, system_clock
from sfconnector.mapping.codes import normalise_code
from sfconnector.pipeline.batch import BatchProcessor
from sfconnector.pipeline.lead_reader import lead_fields
from sfconnector.pipeline.lifecycle import PipelineLookups, PipelineRules
from sfconnector.pipeline.lookups import OrgLookups
from sfconnector.pipeline.referrals import REASON_MAX, DecisionRules, ReferralOutcome
from sfconnector.reconcile import _replay
from sfconnector.reconcile._findings import (
    KINDS,
    QUEUE_PREFIX,
    Finding,
    FindingKind,
    OwnerMismatch,
    Repair,
    expected_status,
    id15,
    owner_mismatch,
    parent,
    parse_datetime,
    referred_leads,
    relationship,
)
from sfconnector.rules.lifecycle import WON, ReferralEvent, ReferralState, next_referral_status
from sfconnector.rules.model import shorten
from sfconnector.soql import IdList, chunked_in, soql
from sfconnector.state import DecidedBatch, OutboxEntry, StateStore

log = structlog.get_logger("sfconnector.reconcile")

PAGE_SIZE = 2000  # records per query page (Salesforce's largest)
BATCH_SIZE = 200  # repairs decided together: one set of batched lookups, one SQLite transaction
OPEN_OUTBOX = frozenset({"pending", "retrying"})
OPPORTUNITY_FIELDS = ("Id", "StageName", "IsWon", "IsClosed", "LastModifiedDate")

# stage ("referrals", "leads"), done, total (None: unknown); called per page and per repair batch
ProgressCallback = Callable[[str, int, int | None], None]


class ReconcileClient(Protocol):
    """What the sweep needs of the Salesforce client."""

    def query(self, soql: str) -> list[dict[str, Any]]: ...

    @property
    def api_calls(self) -> int: ...


@dataclass(frozen=True)
class _Repair:
    """A finding waiting for its batch: the messages that repair it and how to spot its writes."""

    kind: FindingKind
    record_id: str
    detail: str
    messages: tuple[dict[str, Any], ...]
    marks: Callable[[OutboxEntry], bool]
    lead_id: str | None = None  # a missing referral's lead (its routing log row is kept when new)
    converted: Mapping[str, Any] | None = None  # the lead row, when converted meanwhile


@dataclass
class ReconcileSummary:
    """What one sweep read, found and queued."""

    since: datetime
    dry_run: bool
    leads_scanned: int = 0
    referrals_scanned: int = 0
    findings: list[Finding] = field(default_factory=list)
    queued: int = 0  # new outbox entries (0 on a second run)
    api_calls: int = 0
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    stopped: bool = False

    def count(self, kind: FindingKind, repair: Repair | None = None) -> int:
        return sum(1 for f in self.findings if f.kind == kind and (repair is None or f.repair == repair))

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "dry_run": self.dry_run,
            "leads_scanned": self.leads_scanned,
            "referrals_scanned": self.referrals_scanned,
            "queued": self.queued,
            "api_calls": self.api_calls,
            "elapsed_s": round(self.elapsed_s, 3),
            "counts": {
                kind: {
                    r: self.count(kind, r) for r in ("queued", "already_queued", "would_queue", "reported")
                }
                for kind in KINDS
            },
            "findings": [
                {"kind": f.kind, "record_id": f.record_id, "repair": f.repair, "detail": f.detail}
                for f in self.findings
            ],
            "notes": list(self.notes),
            "stopped": self.stopped,
        }


def _batches(repairs: Sequence[_Repair], size: int) -> Iterator[list[_Repair]]:
    """About `size` repairs at a time, never splitting repairs that share their last event (a lag and the
    missing reward of one won opportunity): decided in two batches, the second would find the first's
    decision already made and write nothing for its own finding."""
    ordered = sorted(repairs, key=_group)
    batch: list[_Repair] = []
    for repair in ordered:
        if len(batch) >= size and _group(repair) != _group(batch[-1]):
            yield batch
            batch = []
        batch.append(repair)
    if batch:
        yield batch


def _group(repair: _Repair) -> str:
    return _replay.event_key(repair.messages[-1]) if repair.messages else repair.record_id


def _key_is(key: str) -> Callable[[OutboxEntry], bool]:
    return lambda entry: entry.key == key


def _reward_of(opportunity_id15: str) -> Callable[[OutboxEntry], bool]:
    return lambda entry: entry.key.startswith("reward:") and opportunity_id15 in entry.key


class Reconciler:
    """One org's sweep. Reads through `client`, decides with the daemon's rules, queues into `state`.

    With `PipelineRules` and `PipelineLookups` (what `wiring` builds) the lifecycle is on: status lags and
    missing rewards are repaired, and repaired referrals update their advocate's totals. With plain routing
    rules only missing referrals and wrong owners are repaired; the rest is reported. `state` may be None
    for a dry run on a host without the daemon's state file: nothing is queued then.
    """

    def __init__(
        self,
        client: ReconcileClient,
        rules: DecisionRules,
        lookups: OrgLookups,
        state: StateStore | None,
        *,
        own_client: str = "sfconnector",
        integration_username: str | None = None,
        rewards_enabled: bool = False,
        page_size: int = PAGE_SIZE,
        batch_size: int = BATCH_SIZE,
        clock: Clock = system_clock,
    ) -> None:
        self._client, self._rules, self._lookups, self._state = client, rules, lookups, state
        self._own, self._clock = own_client, clock
        self._processor = BatchProcessor(rules, lookups, own_client, clock=clock)
        self._lifecycle = isinstance(rules, PipelineRules) and isinstance(lookups, PipelineLookups)
        self._username = integration_username
        self._rewards = rewards_enabled
        self._page_size, self._batch_size = page_size, batch_size
        self._integration_ids: frozenset[str] | None = None
        self._stopping: Callable[[], bool] = lambda: False

    # -- the sweep ---------------------------------------------------------------------------------------

    def run(
        self,
        since: datetime,
        *,
        until: datetime | None = None,
        dry_run: bool = False,
        progress: ProgressCallback | None = None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> ReconcileSummary:
        """Find and repair everything out of place for referral leads created since `since` (before `until`).

        `stopping` is asked between pages and batches: a daemon shutting down ends the sweep early (what was
        queued stays queued; the next sweep finds the rest).
        """
        started, calls = time.monotonic(), self._client.api_calls
        summary = ReconcileSummary(since=since, dry_run=dry_run or self._state is None)
        report = progress or (lambda *_: None)
        self._stopping = stopping
        # A fresh processor: the lifecycle remembers what it decided for a while, and a sweep must see the
        # org as it is, not as an earlier sweep left its still-queued writes.
        self._processor = BatchProcessor(self._rules, self._lookups, self._own, clock=self._clock)
        log.info("reconcile.started", since=since.isoformat(), dry_run=summary.dry_run)
        referred, lifecycle = self._sweep_referrals(since, summary, report)
        if not stopping():
            self._sweep_leads(since, until, referred, summary, report)
        if not stopping():
            self._run_repairs(lifecycle, summary)
        if stopping():
            summary.stopped = True
            summary.notes.append("stopped early (shutdown): the next sweep finds the rest")
        if not self._lifecycle and (summary.count("status_lag") or summary.count("reward_missing")):
            summary.notes.append(
                "status lags and missing rewards are reported, not repaired: the lifecycle rules are not"
                " wired into this sweep"
            )
        summary.api_calls = self._client.api_calls - calls
        summary.elapsed_s = time.monotonic() - started
        log.info(
            "reconcile.finished",
            leads=summary.leads_scanned,
            referrals=summary.referrals_scanned,
            queued=summary.queued,
            **{kind: summary.count(kind) for kind in KINDS},
            api_calls=summary.api_calls,
            elapsed_s=round(summary.elapsed_s, 3),
        )
        return summary

    # -- reading -----------------------------------------------------------------------------------------

    def _count(self, where: str, sobject: str, **params: Any) -> int:
        rows = self._client.query(soql(f"SELECT COUNT(Id) n FROM {sobject} WHERE {where}", **params))
        return int(rows[0].get("n") or 0) if rows else 0

    def _pages(self, select: str, sobject: str, where: str, **params: Any) -> Iterator[list[dict[str, Any]]]:
        """Keyset pages ordered by Id: each page one query, so progress shows and memory stays flat."""
        after: str | None = None
        while True:
            clause = where + (" AND Id > {after}" if after else "")
            extra = {"after": after} if after else {}
            rows = self._client.query(
                soql(
                    f"SELECT {select} FROM {sobject} WHERE {clause} ORDER BY Id LIMIT {self._page_size}",
                    **params,
                    **extra,
                )
            )
            rows = [{k: v for k, v in r.items() if k != "attributes"} for r in rows]
            if rows:
                yield rows
            if len(rows) < self._page_size or self._stopping():
                return
            after = str(rows[-1]["Id"])

    def _opportunities(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Opportunities by 15-character id, with what an outcome event needs."""
        found: dict[str, dict[str, Any]] = {}
        for chunk in chunked_in(sorted(set(ids))):
            template = f"SELECT {', '.join(OPPORTUNITY_FIELDS)} FROM Opportunity WHERE Id IN {{ids}}"
            for row in self._client.query(soql(template, ids=IdList(chunk))):
                found[id15(row["Id"])] = {k: v for k, v in row.items() if k != "attributes"}
        return found

    def lead_fields(self) -> list[str]:
        """The lead columns the sweep reads: the same as every other reader of a referred lead."""
        return list(lead_fields(self._rules.mapping, self._rules.routing))

    # -- referrals: wrong owners, status lags, missing rewards -------------------------------------------

    def _sweep_referrals(
        self, since: datetime, summary: ReconcileSummary, report: ProgressCallback
    ) -> tuple[set[str], list[_Repair]]:
        m = self._rules.mapping
        ref, lead = m.referral, m.lead
        lead_r, opp_r = relationship(ref.lead), relationship(ref.opportunity)
        lead_columns = (
            lead.owner,
            lead.is_converted,
            lead.status,
            lead.converted_contact,
            lead.converted_opportunity,
        )
        select = ", ".join(
            [
                "Id",
                ref.external_key,
                ref.lead,
                ref.advocate,
                ref.status,
                ref.routed_owner,
                ref.contact,
                ref.opportunity,
                *(f"{lead_r}.{f}" for f in (*lead_columns, "LastModifiedDate")),
                *(f"{opp_r}.{f}" for f in OPPORTUNITY_FIELDS[1:]),
            ]
        )
        # Referrals of leads created since `since`, and older ones whose lead or opportunity moved since.
        where = (
            f"({lead_r}.CreatedDate >= {{since}} OR {lead_r}.LastModifiedDate >= {{since}}"
            f" OR {opp_r}.LastModifiedDate >= {{since}} OR LastModifiedDate >= {{since}})"
        )
        total = self._count(where, ref.object, since=since)
        referred: set[str] = set()
        repairs: list[_Repair] = []
        won: list[tuple[str, str, dict[str, Any]]] = []  # referral, opportunity id, opportunity
        done = 0
        report("referrals", 0, total)
        for page in self._pages(select, ref.object, where, since=since):
            referred |= referred_leads(page, m)
            # SOQL reaches one level of parents: a converted lead's opportunity not linked yet is read apart.
            opportunities = self._opportunities(
                [
                    str(parent(r, ref.lead).get(lead.converted_opportunity))
                    for r in page
                    if not r.get(ref.opportunity) and parent(r, ref.lead).get(lead.converted_opportunity)
                ]
            )
            for row in page:
                mismatch = owner_mismatch(row, m)
                if mismatch is not None:
                    self._wrong_owner(mismatch, summary)
                decision = expected_status(row, m, opportunities)
                opp_id = (decision.opportunity_id if decision else None) or row.get(ref.opportunity)
                opp = parent(row, ref.opportunity) or opportunities.get(id15(opp_id), {})
                opportunity = {"Id": opp_id, **opp} if opp_id and opp else None
                if decision is not None:
                    repairs.append(
                        self._status_repair(row, decision.previous_status, decision.status, opportunity)
                    )
                status = decision.status if decision else str(row.get(ref.status) or "")
                if status == WON and opportunity and row.get(ref.advocate):
                    won.append((str(row["Id"]), str(opp_id), opportunity))
            done += len(page)
            summary.referrals_scanned = done
            report("referrals", done, total)
            if self._stopping():
                break
        if self._rewards and won:
            repairs.extend(self._missing_rewards(won))
        return referred, repairs

    def _status_repair(
        self, row: Mapping[str, Any], previous: str, status: str, opportunity: Mapping[str, Any] | None
    ) -> _Repair:
        """The events that move a lagging referral: its lead's conversion or disqualification, its opportunity's
        outcome."""
        m = self._rules.mapping
        lead_row = {**parent(row, m.referral.lead), "Id": row.get(m.referral.lead)}
        when = parse_datetime(lead_row.get("LastModifiedDate"))
        messages: list[dict[str, Any]] = []
        if lead_row["Id"] and previous == "Lead":
            if lead_row.get(m.lead.is_converted):
                messages.append(_replay.lead_converted(lead_row, m, when))
            elif str(lead_row.get(m.lead.status) or "").lower() == _replay.DISQUALIFIED_STATUS.lower():
                messages.append(_replay.lead_disqualified(str(lead_row["Id"]), m, when))
        if opportunity is not None and (status in (WON, "Lost") or previous in (WON, "Lost")):
            messages.append(
                _replay.opportunity_outcome(opportunity, parse_datetime(opportunity.get("LastModifiedDate")))
            )
        keys = {_replay.event_key(msg) for msg in messages}
        return _Repair(
            "status_lag",
            str(row["Id"]),
            f"{previous} should be {status}",
            tuple(messages),
            lambda e: e.key.startswith("referral-status:") and any(k in e.key for k in keys),
        )

    def _missing_rewards(self, won: Sequence[tuple[str, str, dict[str, Any]]]) -> list[_Repair]:
        rew = self._rules.mapping.reward
        rewarded: set[str] = set()
        for chunk in chunked_in(sorted({opp for _, opp, _ in won})):
            template = f"SELECT {rew.opportunity} FROM {rew.object} WHERE {rew.opportunity} IN {{ids}}"
            rows = self._client.query(soql(template, ids=IdList(chunk)))
            rewarded |= {id15(r.get(rew.opportunity)) for r in rows}
        repairs: list[_Repair] = []
        for referral_id, opp_id, opportunity in won:
            if id15(opp_id) in rewarded:
                continue
            when = parse_datetime(opportunity.get("LastModifiedDate"))
            repairs.append(
                _Repair(
                    "reward_missing",
                    opp_id,
                    f"won opportunity of referral {referral_id} has no reward",
                    (_replay.opportunity_outcome(opportunity, when),),
                    _reward_of(id15(opp_id)),
                )
            )
        return repairs

    def _wrong_owner(self, mismatch: OwnerMismatch, summary: ReconcileSummary) -> None:
        lead_id, current, routed = mismatch.lead_id, mismatch.current_owner_id, mismatch.routed_owner_id
        what = f"owned by {current}, routed to {routed}"
        route = self._state.outbox_entry(f"lead-route:{lead_id}") if self._state else None
        if route is not None and route.status in OPEN_OUTBOX:
            self._found(
                summary, "wrong_owner", lead_id, f"{what}: the routing write is still queued", "reported"
            )
            return
        safe, why = self._owner_is_standard(lead_id, current)
        if not safe:
            self._found(
                summary,
                "wrong_owner",
                lead_id,
                f"{what}: left alone, {why}; a person may have reassigned it on purpose",
                "reported",
            )
            return
        lead = self._rules.mapping.lead
        entry = OutboxEntry(
            key=f"reconcile-owner:{lead_id}:{current}",
            op="update",
            sobject=lead.object,
            record_id=lead_id,
            fields={lead.owner: routed},
            expect={lead.owner: current},
        )
        repair = _Repair("wrong_owner", lead_id, f"{what}: {why}, so it goes to {routed}", (), lambda e: True)
        self._settle(summary, [repair], [entry], DecidedBatch())

    def _owner_is_standard(self, lead_id: str, owner_id: str) -> tuple[bool, str]:
        """Whether the lead's owner is one no person chose: a queue, the integration user, or the owner the
        standard assignment gave it (the routing log remembers that one)."""
        if owner_id.startswith(QUEUE_PREFIX):
            return True, "its owner is a queue"
        if id15(owner_id) in self._integration_user_ids():
            return True, "its owner is the integration user"
        if self._state is not None:
            for row in self._state.routing_log(lead_id=lead_id, limit=10):
                if row.standard_owner_id and id15(row.standard_owner_id) == id15(owner_id):
                    return True, "its owner is the one standard assignment gave it (routing log)"
        return False, "its owner is a user the sweep cannot tell from a person's choice"

    def _integration_user_ids(self) -> frozenset[str]:
        if self._integration_ids is None:
            ids: set[str] = set()
            if self._username:
                rows = self._client.query(soql("SELECT Id FROM User WHERE Username = {u}", u=self._username))
                ids = {id15(r["Id"]) for r in rows}
            self._integration_ids = frozenset(ids)
        return self._integration_ids

    # -- leads without a referral ------------------------------------------------------------------------

    def _sweep_leads(
        self,
        since: datetime,
        until: datetime | None,
        referred: set[str],
        summary: ReconcileSummary,
        report: ProgressCallback,
    ) -> None:
        lead = self._rules.mapping.lead
        where = f"{lead.referral_code} != null AND CreatedDate >= {{since}}"
        params: dict[str, Any] = {"since": since}
        if until is not None:
            where += " AND CreatedDate < {until}"
            params["until"] = until
        total = self._count(where, lead.object, **params)
        done = 0
        pending: list[dict[str, Any]] = []
        report("leads", 0, total)
        for page in self._pages(", ".join(self.lead_fields()), lead.object, where, **params):
            for row in page:
                done += 1
                if id15(row["Id"]) in referred or not self._is_referral_lead(row):
                    continue
                pending.append(row)
                if len(pending) >= self._batch_size:
                    self._run_repairs(self._missing_referrals(pending), summary)
                    pending = []
                    report("leads", done, total)  # a line per repair batch
                    if self._stopping():
                        summary.leads_scanned = done
                        return
            summary.leads_scanned = done
            report("leads", done, total)
        if pending and not self._stopping():
            self._run_repairs(self._missing_referrals(pending), summary)

    def _is_referral_lead(self, row: Mapping[str, Any]) -> bool:
        """A code that normalises to something (what `candidates.from_lead_change` requires)."""
        m = self._rules.mapping
        raw = row.get(m.lead.referral_code)
        return isinstance(raw, str) and bool(raw.strip()) and bool(normalise_code(raw, m.referral_code))

    def _missing_referrals(self, rows: Sequence[dict[str, Any]]) -> list[_Repair]:
        """Each lead as its create event would have shown it, then (converted meanwhile) its conversion and its
        opportunity's outcome.

        The standard owner is the current owner: after an outage nothing tells the assignment rules' choice
        from a later change by a person, so the owner update is conditional on this very owner and a lead a
        person takes over after the sweep read it stays theirs.
        """
        m = self._rules.mapping
        converted_opps = [
            str(r[m.lead.converted_opportunity])
            for r in rows
            if r.get(m.lead.is_converted) and r.get(m.lead.converted_opportunity)
        ]
        opportunities = self._opportunities(converted_opps) if converted_opps and self._lifecycle else {}
        repairs: list[_Repair] = []
        for row in rows:
            lead_id = str(row["Id"])
            created = parse_datetime(row.get("CreatedDate"))
            messages = [_replay.lead_created(row, m, created)]
            converted = bool(row.get(m.lead.is_converted))
            if converted and self._lifecycle:
                messages.append(_replay.lead_converted(row, m, parse_datetime(row.get("LastModifiedDate"))))
                opp = opportunities.get(id15(row.get(m.lead.converted_opportunity)))
                if opp is not None and opp.get("IsClosed"):
                    when = parse_datetime(opp.get("LastModifiedDate"))
                    messages.append(_replay.opportunity_outcome(opp, when))
            key = f"referral:lead:{lead_id}"
            repairs.append(
                _Repair(
                    "missing_referral",
                    lead_id,
                    f"created {created:%Y-%m-%d %H:%M}, code {row.get(m.lead.referral_code)!r}"
                    + (", converted since" if converted else ""),
                    tuple(messages),
                    _key_is(key),
                    lead_id=lead_id,
                    converted=row if converted else None,
                )
            )
        return repairs

    # -- deciding and queueing ---------------------------------------------------------------------------

    def _run_repairs(self, repairs: Sequence[_Repair], summary: ReconcileSummary) -> None:
        """Decide the repairs `batch_size` at a time through the daemon's processor, and queue them."""
        if not self._lifecycle:
            for repair in repairs:
                if repair.kind in ("status_lag", "reward_missing"):
                    self._found(
                        summary, repair.kind, repair.record_id, f"{repair.detail}: not repaired", "reported"
                    )
            repairs = [r for r in repairs if r.kind == "missing_referral"]
        for chunk in _batches(repairs, self._batch_size):
            if self._stopping():
                return
            messages: dict[str, dict[str, Any]] = {}
            for repair in chunk:
                for message in repair.messages:
                    messages.setdefault(_replay.event_key(message), message)  # one event, several findings
            processed = self._processor.process(list(messages.values()))
            outbox = self._fitted(chunk, processed.decided.outbox)
            self._settle(summary, chunk, outbox, processed.decided, outcomes=processed.outcomes)

    def _fitted(self, repairs: Sequence[_Repair], outbox: Sequence[OutboxEntry]) -> list[OutboxEntry]:
        """The writes, fitted to leads converted meanwhile.

        A converted lead cannot be updated (CANNOT_UPDATE_CONVERTED_LEAD) and a "call the advocate first"
        task is moot; its referral names no routed owner (nobody was routed) and says why. Without the
        lifecycle, the referral itself is written already Converted and linked.
        """
        m = self._rules.mapping
        converted = {id15(r.lead_id): r.converted for r in repairs if r.converted is not None and r.lead_id}
        if not converted:
            return list(outbox)
        kept: list[OutboxEntry] = []
        for entry in outbox:
            if entry.sobject == m.lead.object and id15(entry.record_id) in converted:
                continue
            if entry.sobject == "Task" and id15(entry.fields.get("WhoId")) in converted:
                continue
            row = converted.get(id15(entry.fields.get(m.referral.lead)))
            if entry.sobject == m.referral.object and row is not None:
                ref = m.referral
                why = entry.fields.get(ref.routing_reason)
                reason = f"converted before the connector saw it: owner left as is | {why}"
                entry = replace(
                    entry,
                    fields={
                        **entry.fields,
                        ref.routed_owner: None,
                        ref.routing_reason: shorten(reason, REASON_MAX),
                    },
                )
                if not self._lifecycle:
                    entry = self._as_converted(entry, row)
            kept.append(entry)
        return kept

    def _as_converted(self, entry: OutboxEntry, row: Mapping[str, Any]) -> OutboxEntry:
        m = self._rules.mapping
        ref = m.referral
        decision = next_referral_status(
            ReferralState(str(entry.fields.get(ref.status) or "")),
            ReferralEvent(
                "lead_converted",
                contact_id=row.get(m.lead.converted_contact),
                opportunity_id=row.get(m.lead.converted_opportunity),
            ),
        )
        if decision is None:
            return entry
        fields = {**entry.fields, ref.status: decision.status}
        if decision.contact_id:
            fields[ref.contact] = decision.contact_id
        if decision.opportunity_id:
            fields[ref.opportunity] = decision.opportunity_id
        return replace(entry, fields=fields)

    def _settle(
        self,
        summary: ReconcileSummary,
        repairs: Sequence[_Repair],
        outbox: Sequence[OutboxEntry],
        decided: DecidedBatch,
        *,
        outcomes: Sequence[ReferralOutcome] = (),
    ) -> None:
        """Record what each repair came to, and commit the batch (never its checkpoints or event keys)."""
        dry = summary.dry_run or self._state is None
        known: set[str] = set()
        if not dry and self._state is not None:
            known = {e.key for e in outbox if self._state.outbox_entry(e.key) is not None}
        new_leads: set[str] = set()
        for repair in repairs:
            mine = [e for e in outbox if repair.marks(e)]
            if not mine:
                why = "the rules decided nothing to write (see the dead letters if a decision failed)"
                self._found(summary, repair.kind, repair.record_id, f"{repair.detail}: {why}", "reported")
            elif dry:
                self._found(summary, repair.kind, repair.record_id, repair.detail, "would_queue")
            elif all(e.key in known for e in mine):
                status = self._state.outbox_entry(mine[0].key) if self._state else None
                where = f" (in the outbox: {status.status})" if status else ""
                self._found(summary, repair.kind, repair.record_id, repair.detail + where, "already_queued")
            else:
                self._found(
                    summary, repair.kind, repair.record_id, self._describe(repair, outcomes), "queued"
                )
                if repair.lead_id:
                    new_leads.add(id15(repair.lead_id))
        if dry or self._state is None or not (outbox or decided.dead_letters):
            return
        logs = [row for row in decided.routing_log if id15(row.lead_id) in new_leads]
        dead = list(decided.dead_letters)
        if dead:  # a decision that fails on every sweep is one dead letter, not one per sweep
            held = {(d.source, d.reason) for d in self._state.dead_letters()}
            dead = [d for d in dead if (d.source, d.reason) not in held]
        self._state.commit_batch(DecidedBatch(outbox=list(outbox), routing_log=logs, dead_letters=dead))
        summary.queued += sum(1 for e in outbox if e.key not in known)

    @staticmethod
    def _describe(repair: _Repair, outcomes: Sequence[ReferralOutcome]) -> str:
        if repair.lead_id is None:
            return repair.detail
        for outcome in outcomes:
            if outcome.candidate.lead_id == repair.lead_id and repair.converted is not None:
                return f"{repair.detail}: referral recorded [{outcome.routing.rule}], owner left as is"
            if outcome.candidate.lead_id == repair.lead_id:
                owner = outcome.routed_owner_id if outcome.routing.changes_owner else None
                return (
                    f"{repair.detail}: {outcome.routing.action} -> {owner or 'owner unchanged'}"
                    f" [{outcome.routing.rule}]"
                )
        return repair.detail

    def _found(
        self, summary: ReconcileSummary, kind: FindingKind, record_id: str, detail: str, repair: Repair
    ) -> None:
        summary.findings.append(Finding(kind, record_id, detail, repair))
        log.info("reconcile.found", kind=kind, record_id=record_id, repair=repair, detail=detail)
