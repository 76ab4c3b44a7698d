"""The reconciliation sweep: read the org by SOQL, find what the event stream missed, repair through the outbox.

    referrals (keyset pages) ─► wrong owners, status lags, missing rewards
    referral leads (keyset pages) ─► leads without a Referral__c ─► batches of 200 ─► decide_referral ─► outbox

Repairs are the daemon's own decisions with the daemon's own outbox keys (`referral:lead:<Id>`,
`lead-route:<Id>`, the task and email keys), committed with `StateStore.commit_batch`, whose INSERT OR IGNORE
makes a second sweep (or a sweep racing the stream) add nothing. Owner repairs are conditional updates that
apply only while the lead still has the owner the sweep saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from sfconnector.mapping.codes import normalise_code
from sfconnector.pipeline.candidates import CHANNELS, ReferralCandidate
from sfconnector.pipeline.lookups import OrgLookups
from sfconnector.pipeline.referrals import DecisionRules, ReferralOutcome, decide_referral
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
from sfconnector.rules.lifecycle import (
    WON,
    ReferralEvent,
    ReferralState,
    StatusDecision,
    next_referral_status,
)
from sfconnector.rules.routing import fields_read
from sfconnector.soql import IdList, chunked_in, soql
from sfconnector.state import DecidedBatch, OutboxEntry, RoutingLogRow, StateStore

log = structlog.get_logger("sfconnector.reconcile")

PAGE_SIZE = 2000  # records per query page (Salesforce's largest)
BATCH_SIZE = 200  # repairs decided together: one set of batched lookups, one SQLite transaction
OPEN_OUTBOX = frozenset({"pending", "retrying"})

# stage ("referrals", "leads"), done, total (None: unknown); called per page and per repair batch
ProgressCallback = Callable[[str, int, int | None], None]


class ReconcileClient(Protocol):
    """What the sweep needs of the Salesforce client."""

    def query(self, soql: str) -> list[dict[str, Any]]: ...

    @property
    def api_calls(self) -> int: ...


@dataclass(frozen=True)
class StatusLag:
    """A referral whose status lags its lead or opportunity, with the status the lifecycle rules give it."""

    referral_id: str
    lead_id: str | None
    advocate_id: str | None
    decision: StatusDecision


@dataclass(frozen=True)
class MissingReward:
    """A won, credited referral whose opportunity has no Reward__c."""

    referral_id: str
    opportunity_id: str
    advocate_id: str


class LifecycleRepairs(Protocol):
    """The lifecycle pipeline's repairs: outbox entries for lagging referrals and missing rewards.

    Provided by the lifecycle work (conversion, rewards, notifications) so a repair writes exactly what the
    event would have written, under the same idempotency keys.
    """

    def status_entries(self, lags: Sequence[StatusLag]) -> list[OutboxEntry]: ...

    def reward_entries(self, missing: Sequence[MissingReward]) -> list[OutboxEntry]: ...


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
        }


class Reconciler:
    """One org's sweep. Reads through `client`, decides with the daemon's rules, queues into `state`.

    `state` may be None for a dry run on a host without the daemon's state file: nothing is queued then.
    """

    def __init__(
        self,
        client: ReconcileClient,
        rules: DecisionRules,
        lookups: OrgLookups,
        state: StateStore | None,
        *,
        integration_username: str | None = None,
        rewards_enabled: bool = False,
        lifecycle: LifecycleRepairs | None = None,
        page_size: int = PAGE_SIZE,
        batch_size: int = BATCH_SIZE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client, self._rules, self._lookups, self._state = client, rules, lookups, state
        self._username = integration_username
        self._rewards = rewards_enabled
        self._lifecycle = lifecycle
        self._page_size, self._batch_size = page_size, batch_size
        self._clock = clock
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
        log.info("reconcile.started", since=since.isoformat(), dry_run=summary.dry_run)
        referred = self._sweep_referrals(since, summary, report)
        if not stopping():
            self._sweep_leads(since, until, referred, summary, report)
        if stopping():
            summary.stopped = True
            summary.notes.append("stopped early (shutdown): the next sweep finds the rest")
        if self._lifecycle is None and (summary.count("status_lag") or summary.count("reward_missing")):
            summary.notes.append(
                "status lags and missing rewards are reported, not repaired: the lifecycle pipeline"
                " (conversion and reward decisions) is not available to this sweep"
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

    def _lead_fields(self) -> list[str]:
        lead = self._rules.mapping.lead
        base = [
            "Id",
            lead.owner,
            lead.email,
            lead.first_name,
            lead.last_name,
            lead.company,
            lead.referral_code,
            lead.channel,
            lead.advocate,
            lead.status,
            lead.is_converted,
            lead.converted_contact,
            lead.converted_opportunity,
            "CreatedDate",
        ]
        from_rules, _ = fields_read(self._rules.routing)
        seen = {f.lower() for f in base}
        return base + sorted(f for f in from_rules if f.lower() not in seen)

    # -- referrals: wrong owners, status lags, missing rewards -------------------------------------------

    def _sweep_referrals(
        self, since: datetime, summary: ReconcileSummary, report: ProgressCallback
    ) -> set[str]:
        m = self._rules.mapping
        ref, lead = m.referral, m.lead
        lead_r, opp_r = relationship(ref.lead), relationship(ref.opportunity)
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
                *(
                    f"{lead_r}.{f}"
                    for f in (
                        lead.owner,
                        lead.is_converted,
                        lead.status,
                        lead.converted_contact,
                        lead.converted_opportunity,
                    )
                ),
                f"{opp_r}.IsWon",
                f"{opp_r}.IsClosed",
            ]
        )
        # Referrals of leads created since `since`, and older ones whose lead or opportunity moved since.
        where = (
            f"({lead_r}.CreatedDate >= {{since}} OR {lead_r}.LastModifiedDate >= {{since}}"
            f" OR {opp_r}.LastModifiedDate >= {{since}} OR LastModifiedDate >= {{since}})"
        )
        total = self._count(where, ref.object, since=since)
        referred: set[str] = set()
        lags: list[StatusLag] = []
        won: list[tuple[str, str, str]] = []  # referral, opportunity, advocate
        done = 0
        report("referrals", 0, total)
        for page in self._pages(select, ref.object, where, since=since):
            referred |= referred_leads(page, m)
            opportunities = self._converted_opportunities(page)
            for row in page:
                mismatch = owner_mismatch(row, m)
                if mismatch is not None:
                    self._wrong_owner(mismatch, summary)
                decision = expected_status(row, m, opportunities)
                status = decision.status if decision else str(row.get(ref.status) or "")
                if decision is not None:
                    lags.append(StatusLag(str(row["Id"]), row.get(ref.lead), row.get(ref.advocate), decision))
                opp_id = (decision.opportunity_id if decision else None) or row.get(ref.opportunity)
                if status == WON and opp_id and row.get(ref.advocate):
                    won.append((str(row["Id"]), str(opp_id), str(row[ref.advocate])))
            done += len(page)
            summary.referrals_scanned = done
            report("referrals", done, total)
        self._status_lags(lags, summary)
        if self._rewards and won:
            self._missing_rewards(won, summary)
        return referred

    def _converted_opportunities(self, page: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
        """IsWon/IsClosed of converted leads' opportunities not yet linked to their referral."""
        m = self._rules.mapping
        wanted = sorted(
            {
                str(parent(r, m.referral.lead).get(m.lead.converted_opportunity))
                for r in page
                if not r.get(m.referral.opportunity)
                and parent(r, m.referral.lead).get(m.lead.converted_opportunity)
            }
        )
        found: dict[str, Mapping[str, Any]] = {}
        for chunk in chunked_in(wanted):
            for row in self._client.query(
                soql("SELECT Id, IsWon, IsClosed FROM Opportunity WHERE Id IN {ids}", ids=IdList(chunk))
            ):
                found[id15(row["Id"])] = row
        return found

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
        self._queue(summary, "wrong_owner", lead_id, f"{what}: {why}, so it goes to {routed}", [entry], [])

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

    def _status_lags(self, lags: Sequence[StatusLag], summary: ReconcileSummary) -> None:
        if not lags:
            return
        if self._lifecycle is None:
            for lag in lags:
                d = lag.decision
                self._found(
                    summary,
                    "status_lag",
                    lag.referral_id,
                    f"{d.previous_status} should be {d.status} ({d.reason}): not repaired",
                    "reported",
                )
            return
        entries = self._lifecycle.status_entries(lags)
        for lag in lags:
            d = lag.decision
            mine = [e for e in entries if lag.referral_id in e.key or (lag.lead_id or "\0") in e.key]
            self._queue(
                summary,
                "status_lag",
                lag.referral_id,
                f"{d.previous_status} -> {d.status}",
                mine,
                [],
                commit=False,
            )
        self._commit(entries, [], summary)

    def _missing_rewards(self, won: Sequence[tuple[str, str, str]], summary: ReconcileSummary) -> None:
        rew = self._rules.mapping.reward
        rewarded: set[str] = set()
        for chunk in chunked_in(sorted({opp for _, opp, _ in won})):
            template = f"SELECT {rew.opportunity} FROM {rew.object} WHERE {rew.opportunity} IN {{ids}}"
            rewarded |= {
                id15(r.get(rew.opportunity)) for r in self._client.query(soql(template, ids=IdList(chunk)))
            }
        missing = [MissingReward(r, o, a) for r, o, a in won if id15(o) not in rewarded]
        if not missing:
            return
        if self._lifecycle is None:
            for item in missing:
                self._found(
                    summary,
                    "reward_missing",
                    item.opportunity_id,
                    f"won opportunity of referral {item.referral_id} has no reward: not repaired",
                    "reported",
                )
            return
        entries = self._lifecycle.reward_entries(missing)
        for item in missing:
            mine = [e for e in entries if id15(item.opportunity_id) in e.key]
            self._queue(
                summary,
                "reward_missing",
                item.opportunity_id,
                f"referral {item.referral_id}",
                mine,
                [],
                commit=False,
            )
        self._commit(entries, [], summary)

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
        pending: list[tuple[ReferralCandidate, Mapping[str, Any]]] = []
        report("leads", 0, total)
        for page in self._pages(", ".join(self._lead_fields()), lead.object, where, **params):
            for row in page:
                done += 1
                if id15(row["Id"]) in referred:
                    continue
                candidate = self._candidate(row)
                if candidate is not None:
                    pending.append((candidate, row))
                if len(pending) >= self._batch_size:
                    self._repair_missing(pending, summary)
                    pending = []
                    report("leads", done, total)  # a line per repair batch
                    if self._stopping():
                        summary.leads_scanned = done
                        return
            summary.leads_scanned = done
            report("leads", done, total)
        if pending and not self._stopping():
            self._repair_missing(pending, summary)

    def _candidate(self, row: Mapping[str, Any]) -> ReferralCandidate | None:
        """The lead as its create event would have presented it (see `candidates.from_lead_change`).

        The standard owner is the current owner: after an outage nothing tells the assignment rules' choice
        from a later change by a person, so the owner update is conditional on this very owner and a lead a
        person took over after the sweep read it stays theirs.
        """
        m = self._rules.mapping
        raw = row.get(m.lead.referral_code)
        if not isinstance(raw, str) or not raw.strip():
            return None
        code = normalise_code(raw, m.referral_code)
        if not code:
            return None
        channel = row.get(m.lead.channel)
        owner = row.get(m.lead.owner)
        return ReferralCandidate(
            source_key=f"reconcile:lead:{row['Id']}",
            lead_id=str(row["Id"]),
            raw_code=raw,
            code=code,
            channel=channel if channel in CHANNELS else None,
            email=row.get(m.lead.email) or None,
            fields={k: v for k, v in row.items() if k != "Id"},
            standard_owner_id=str(owner) if owner else None,
            created_at=parse_datetime(row.get("CreatedDate")),
            current_owner_id=str(owner) if owner else None,
        )

    def _repair_missing(
        self, batch: Sequence[tuple[ReferralCandidate, Mapping[str, Any]]], summary: ReconcileSummary
    ) -> None:
        lookups = self._lookups.fetch(
            codes=[c.raw_code for c, _ in batch],
            emails=[c.email for c, _ in batch],
            exclude_lead_ids=[c.lead_id for c, _ in batch if c.lead_id],
        )
        now = self._clock()
        entries: list[OutboxEntry] = []
        logs: list[RoutingLogRow] = []
        for candidate, row in batch:
            lead_id = str(candidate.lead_id)
            try:
                outcome = decide_referral(candidate, lookups, self._rules, now)
            except Exception as exc:  # a rule bug must cost one referral, not the sweep
                log.error("reconcile.decision_failed", lead_id=lead_id, error=repr(exc))
                self._found(summary, "missing_referral", lead_id, f"decision failed: {exc!r}", "reported")
                continue
            outbox = self._as_lead_is(outcome, row)
            owner = outcome.routed_owner_id if outcome.routing.changes_owner else None
            detail = (
                f"created {parse_datetime(row.get('CreatedDate')):%Y-%m-%d %H:%M}, code {candidate.raw_code!r}:"
                f" {outcome.routing.action} -> {owner or 'owner unchanged'} [{outcome.routing.rule}]"
            )
            if self._queue(summary, "missing_referral", lead_id, detail, outbox, [], commit=False):
                logs.append(outcome.log)
            entries.extend(outbox)
        self._commit(entries, logs, summary)

    def _as_lead_is(self, outcome: ReferralOutcome, row: Mapping[str, Any]) -> list[OutboxEntry]:
        """The outcome's writes, fitted to a lead that was converted meanwhile.

        A converted lead cannot be updated (CANNOT_UPDATE_CONVERTED_LEAD) and a "call the advocate first"
        task is moot, so only the referral (already Converted, linked to the contact and opportunity) and
        the advocate's email remain.
        """
        m = self._rules.mapping
        if not row.get(m.lead.is_converted):
            return list(outcome.outbox)
        kept: list[OutboxEntry] = []
        for entry in outcome.outbox:
            if entry.sobject in (m.lead.object, "Task"):
                continue
            if entry.sobject == m.referral.object:
                status = str(entry.fields.get(m.referral.status) or "")
                decision = next_referral_status(
                    ReferralState(status),
                    ReferralEvent(
                        "lead_converted",
                        contact_id=row.get(m.lead.converted_contact) or None,
                        opportunity_id=row.get(m.lead.converted_opportunity) or None,
                    ),
                )
                if decision is not None:
                    fields = dict(entry.fields)
                    fields[m.referral.status] = decision.status
                    if decision.contact_id:
                        fields[m.referral.contact] = decision.contact_id
                    if decision.opportunity_id:
                        fields[m.referral.opportunity] = decision.opportunity_id
                    entry = replace(entry, fields=fields)
            kept.append(entry)
        return kept

    # -- queueing ----------------------------------------------------------------------------------------

    def _found(
        self, summary: ReconcileSummary, kind: FindingKind, record_id: str, detail: str, repair: Repair
    ) -> None:
        summary.findings.append(Finding(kind, record_id, detail, repair))
        log.info("reconcile.found", kind=kind, record_id=record_id, repair=repair, detail=detail)

    def _queue(
        self,
        summary: ReconcileSummary,
        kind: FindingKind,
        record_id: str,
        detail: str,
        entries: Sequence[OutboxEntry],
        logs: Sequence[RoutingLogRow],
        *,
        commit: bool = True,
    ) -> bool:
        """Record a repair; True when it is new (its first entry was not in the outbox yet)."""
        if summary.dry_run or self._state is None:
            self._found(summary, kind, record_id, detail, "would_queue")
            return False
        existing = self._state.outbox_entry(entries[0].key) if entries else None
        if existing is not None:
            self._found(
                summary, kind, record_id, f"{detail} (in the outbox: {existing.status})", "already_queued"
            )
            return False
        self._found(summary, kind, record_id, detail, "queued")
        if commit:
            self._commit(entries, logs, summary)
        return True

    def _commit(
        self, entries: Sequence[OutboxEntry], logs: Sequence[RoutingLogRow], summary: ReconcileSummary
    ) -> None:
        if summary.dry_run or self._state is None or not entries:
            return
        new = sum(1 for e in entries if self._state.outbox_entry(e.key) is None)
        self._state.commit_batch(DecidedBatch(outbox=list(entries), routing_log=list(logs)))
        summary.queued += new
