"""Batched reads a batch of referrals needs: advocates by code, leads, people already known, queues, users.

One query per kind per batch (IN lists chunked to stay under URI limits), never one per event. Advocates
are cached for a short time, and dropped from the cache when an advocate change event says they changed.
Every query is built with `sfconnector.soql`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sfconnector.mapping.codes import normalise_code
from sfconnector.mapping.model import SchemaMapping
from sfconnector.pipeline.lead_reader import LeadReader
from sfconnector.rules.model import (
    AdvocateFacts,
    ExistingContact,
    ExistingLead,
    PriorReferral,
    RoutingRules,
)
from sfconnector.rules.routing import fields_read
from sfconnector.soql import IdList, chunked_in, is_record_id, soql


class Querier(Protocol):
    """What lookups need of the Salesforce client."""

    def query(self, soql: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class AdvocateRecord:
    """An advocate with what routing, attribution and notifications read about it and its owner."""

    facts: AdvocateFacts
    owner_active: bool | None
    owner_name: str | None
    email_opt_out: bool = False
    first_name: str | None = None


@dataclass(frozen=True)
class BatchLookups:
    """Everything the decisions of one batch may read; plain data, so decisions stay pure."""

    advocates: Mapping[str, AdvocateRecord] = field(default_factory=dict)  # normalised code -> advocate
    # advocate id (15) -> advocate, for the advocates of earlier referrals of the same people (a duplicate
    # is routed as the referral of the advocate who keeps the credit)
    advocates_by_id: Mapping[str, AdvocateRecord] = field(default_factory=dict)
    leads: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # lead id -> fields (late codes)
    existing_leads: Mapping[str, tuple[ExistingLead, ...]] = field(default_factory=dict)  # email -> leads
    existing_contacts: Mapping[str, tuple[ExistingContact, ...]] = field(default_factory=dict)
    prior_referrals: Mapping[str, tuple[PriorReferral, ...]] = field(default_factory=dict)
    queues: Mapping[str, str] = field(default_factory=dict)  # lower-case queue name -> Group id
    users: Mapping[str, str] = field(default_factory=dict)  # lower-case username -> User id
    user_names: Mapping[str, str] = field(default_factory=dict)  # User id (15) -> Name
    inactive_users: frozenset[str] = frozenset()  # User ids (15) known to be inactive


def _dt(value: Any) -> datetime:
    if isinstance(value, str) and value:
        text = value.replace("Z", "+00:00")
        if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
            text = text[:-2] + ":" + text[-2:]
        try:
            parsed = datetime.fromisoformat(text)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime(1970, 1, 1, tzinfo=UTC)


def _lower_emails(values: Iterable[str | None]) -> list[str]:
    return sorted({v.strip().lower() for v in values if v and v.strip()})


def routing_targets(rules: RoutingRules) -> tuple[set[str], set[str]]:
    """Queue names and usernames the rules name (Ids are used as they are)."""
    queues: set[str] = set()
    users: set[str] = set()
    actions = [r.then for r in rules.rules] + [
        rules.fallbacks.inactive_owner,
        rules.fallbacks.inactive_advocate,
        rules.fallbacks.unknown_advocate,
        rules.fallbacks.no_match,
    ]
    for action in actions:
        if action.kind == "queue" and action.target:
            queues.add(action.target)
        elif action.kind == "user" and action.target and not is_record_id(action.target):
            users.add(action.target)
    return queues, users


class OrgLookups:
    """Runs the batched queries against the org; keeps a short-lived advocate cache."""

    def __init__(
        self,
        client: Querier,
        mapping: SchemaMapping,
        rules: RoutingRules,
        *,
        cache_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client, self._mapping, self._rules = client, mapping, rules
        self._cache_seconds, self._clock = cache_seconds, clock
        self._advocates: dict[str, tuple[float, AdvocateRecord | None]] = {}  # by advocate id
        self._index: tuple[float, dict[str, str]] | None = None
        self._targets: tuple[dict[str, str], dict[str, str]] | None = None
        self._user_names: dict[str, str] = {}
        self._lead_reader = LeadReader(client, mapping, rules)
        self._people_read: set[str] = set()  # user ids (15) whose name and active flag were read
        self._inactive: set[str] = set()

    # -- cache control ----------------------------------------------------------------------------------

    def invalidate_advocates(self, advocate_ids: Iterable[str] = ()) -> None:
        """Forget cached advocates (all of them when no ids are given): an advocate changed in Salesforce."""
        self._index = None  # a code may have been added, changed or removed
        ids = {i[:15] for i in advocate_ids}
        if not ids:
            self._advocates.clear()
            return
        for advocate_id in list(self._advocates):
            if advocate_id[:15] in ids:
                del self._advocates[advocate_id]

    # -- the batch --------------------------------------------------------------------------------------

    def fetch(
        self,
        codes: Iterable[str],
        emails: Iterable[str | None],
        exclude_lead_ids: Iterable[str] = (),
        fetch_lead_ids: Iterable[str] = (),
        owner_ids: Iterable[str | None] = (),
    ) -> BatchLookups:
        """`owner_ids`: the leads' current owners, whose names and whether they are active the rep task and
        the advocate's email need when a lead stays with its owner."""
        leads = self._leads(sorted(set(fetch_lead_ids)))
        lead = self._mapping.lead
        more_codes = [str(f.get(lead.referral_code) or "") for f in leads.values()]
        more_emails = [f.get(lead.email) for f in leads.values()]
        advocates = self._advocates_by_code([*codes, *more_codes])
        email_list = _lower_emails([*emails, *more_emails])
        queues, users = self._routing_targets()
        excluded = set(exclude_lead_ids) | set(leads)
        prior = self._prior_referrals(email_list, excluded)
        earlier_advocates = self._advocates_by_ids({p.advocate_id for ps in prior.values() for p in ps})
        self._read_people([*owner_ids, *(f.get(lead.owner) for f in leads.values())])
        return BatchLookups(
            advocates=advocates,
            leads=leads,
            existing_leads=self._existing_leads(email_list, set(exclude_lead_ids) | set(leads)),
            existing_contacts=self._existing_contacts(email_list),
            prior_referrals=prior,
            advocates_by_id=earlier_advocates,
            queues=queues,
            users=users,
            user_names=dict(self._user_names),
            inactive_users=frozenset(self._inactive),
        )

    def _read_people(self, owner_ids: Iterable[Any]) -> None:
        """Names and active flags of the users among `owner_ids` not read yet (queues are not people)."""
        unknown = sorted(
            {
                str(i)
                for i in owner_ids
                if isinstance(i, str) and i.startswith("005") and i[:15] not in self._people_read
            }
        )
        if not unknown:
            return
        for row in self._query_in(
            "SELECT Id, Name, IsActive FROM User WHERE Id IN {values}", unknown, ids=True
        ):
            uid = str(row["Id"])[:15]
            self._user_names[uid] = str(row.get("Name") or "")
            if row.get("IsActive") is False:
                self._inactive.add(uid)
        self._people_read.update(i[:15] for i in unknown)

    def _query_in(self, template: str, values: Sequence[Any], *, ids: bool = False) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for chunk in chunked_in(values):
            rows.extend(self._client.query(soql(template, values=IdList(chunk) if ids else chunk)))
        return rows

    def _code_index(self, *, refresh: bool) -> dict[str, str]:
        """Normalised referral code -> advocate id, for every advocate with a code.

        Codes are stored as people wrote them ("GRACE-1001") and typed as people say them ("grace 1001"),
        so matching needs the normalised form of both sides, which SOQL cannot compute: the index is read
        whole (one query page per 2,000 advocates) and re-read when a code misses and the index is older
        than the cache lifetime, or when an advocate change event says it is stale.
        """
        now = self._clock()
        if self._index is None or (refresh and now - self._index[0] >= self._cache_seconds):
            adv = self._mapping.advocate
            rows = self._client.query(
                f"SELECT Id, {adv.referral_code} FROM {adv.object} WHERE {adv.referral_code} != null"
            )
            policy = self._mapping.referral_code
            index: dict[str, str] = {}
            for row in rows:
                code = normalise_code(str(row.get(adv.referral_code) or ""), policy)
                if code:
                    index.setdefault(code, str(row["Id"]))
            self._index = (now, index)
        return self._index[1]

    def _advocates_by_code(self, raw_codes: Iterable[str]) -> dict[str, AdvocateRecord]:
        policy = self._mapping.referral_code
        wanted = {normalise_code(c, policy) for c in raw_codes if c and c.strip()}
        wanted.discard("")
        if not wanted:
            return {}
        index = self._code_index(refresh=False)
        if any(code not in index for code in wanted):
            index = self._code_index(refresh=True)
        ids = {code: index[code] for code in wanted if code in index}
        by_id = self._advocates_by_ids(set(ids.values()))
        return {code: by_id[i[:15]] for code, i in ids.items() if i[:15] in by_id}

    def _advocates_by_ids(self, advocate_ids: Iterable[str]) -> dict[str, AdvocateRecord]:
        """Advocate id (15) -> advocate, read through the short-lived cache."""
        cached = {i[:15]: i for i in self._advocates}
        wanted = {cached.get(i[:15], i) for i in advocate_ids if i}
        now = self._clock()
        stale = sorted(
            {i for i in wanted if now - self._advocates.get(i, (-1e18, None))[0] >= self._cache_seconds}
        )
        if stale:
            adv = self._mapping.advocate
            template = f"SELECT {', '.join(self._advocate_fields())} FROM {adv.object} WHERE Id IN {{values}}"
            fetched = {
                str(row["Id"])[:15]: self._advocate(row) for row in self._query_in(template, stale, ids=True)
            }
            for advocate_id in stale:
                self._advocates[advocate_id] = (now, fetched.get(advocate_id[:15]))
        found: dict[str, AdvocateRecord] = {}
        for advocate_id in wanted:
            record = self._advocates.get(advocate_id, (0.0, None))[1]
            if record is not None:
                found[advocate_id[:15]] = record
        return found

    def _advocate_fields(self) -> list[str]:
        """What routing, attribution and notifications read of an advocate, plus what the rules name."""
        adv = self._mapping.advocate
        base = [
            "Id",
            adv.name,
            adv.owner,
            "Owner.IsActive",
            "Owner.Name",
            adv.email,
            adv.referral_code,
            adv.program,
            adv.status,
            adv.preferred_reward,
            adv.successful_referrals,
            adv.email_opt_out,
        ]
        _, from_rules = fields_read(self._rules)
        seen = {f.lower() for f in base}
        return base + sorted(f for f in from_rules if f.lower() not in seen)

    def _advocate(self, row: Mapping[str, Any]) -> AdvocateRecord:
        adv = self._mapping.advocate
        owner = row.get("Owner") if isinstance(row.get("Owner"), Mapping) else None
        owner_id = row.get(adv.owner)
        owner_name = str(owner.get("Name")) if owner and owner.get("Name") else None
        if owner_id and owner_name:
            self._user_names[str(owner_id)[:15]] = owner_name
        fields = {k: v for k, v in row.items() if k not in ("attributes", "Owner")}
        name = str(row.get(adv.name) or "")
        return AdvocateRecord(
            facts=AdvocateFacts(
                advocate_id=str(row["Id"]),
                owner_id=str(owner_id) if owner_id else None,
                active=row.get(adv.status) == self._mapping.active_advocate_status,
                name=name,
                email=row.get(adv.email),
                referral_code=row.get(adv.referral_code),
                fields=fields,
                owner_name=owner_name,
            ),
            owner_active=bool(owner.get("IsActive")) if owner and "IsActive" in owner else None,
            owner_name=owner_name,
            email_opt_out=bool(row.get(adv.email_opt_out)),
            first_name=name.split()[0] if name.strip() else None,
        )

    def _leads(self, lead_ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        return self._lead_reader.read(lead_ids) if lead_ids else {}

    def _existing_leads(
        self, emails: Sequence[str], exclude: set[str]
    ) -> dict[str, tuple[ExistingLead, ...]]:
        if not emails:
            return {}
        lead = self._mapping.lead
        template = (
            f"SELECT Id, {lead.email}, CreatedDate, {lead.is_converted}, {lead.status}, {lead.owner} "
            f"FROM {lead.object} WHERE {lead.email} IN {{values}}"
        )
        excluded = {i[:15] for i in exclude}
        out: dict[str, list[ExistingLead]] = {}
        for row in self._query_in(template, emails):
            if str(row["Id"])[:15] in excluded:
                continue
            status = str(row.get(lead.status) or "")
            out.setdefault(str(row.get(lead.email) or "").lower(), []).append(
                ExistingLead(
                    lead_id=str(row["Id"]),
                    created=_dt(row.get("CreatedDate")),
                    is_converted=bool(row.get(lead.is_converted)),
                    is_closed=status.lower().startswith("closed"),
                    owner_id=row.get(lead.owner),
                )
            )
        return {k: tuple(v) for k, v in out.items()}

    def _existing_contacts(self, emails: Sequence[str]) -> dict[str, tuple[ExistingContact, ...]]:
        if not emails:
            return {}
        contacts = self._query_in("SELECT Id, Email, AccountId FROM Contact WHERE Email IN {values}", emails)
        accounts = sorted({str(c["AccountId"]) for c in contacts if c.get("AccountId")})
        open_by_account: dict[str, list[str]] = {}
        if accounts:
            for opp in self._query_in(
                "SELECT Id, AccountId FROM Opportunity WHERE IsClosed = false AND AccountId IN {values}",
                accounts,
                ids=True,
            ):
                open_by_account.setdefault(str(opp["AccountId"])[:15], []).append(str(opp["Id"]))
        out: dict[str, list[ExistingContact]] = {}
        for c in contacts:
            account = str(c.get("AccountId") or "")[:15]
            out.setdefault(str(c.get("Email") or "").lower(), []).append(
                ExistingContact(str(c["Id"]), tuple(open_by_account.get(account, ())))
            )
        return {k: tuple(v) for k, v in out.items()}

    def _prior_referrals(
        self, emails: Sequence[str], exclude_leads: set[str]
    ) -> dict[str, tuple[PriorReferral, ...]]:
        if not emails:
            return {}
        ref, lead = self._mapping.referral, self._mapping.lead
        relationship = ref.lead[:-3] + "__r" if ref.lead.endswith("__c") else ref.lead
        template = (
            f"SELECT Id, {ref.advocate}, {ref.lead}, CreatedDate, {relationship}.{lead.email} FROM {ref.object} "
            f"WHERE {relationship}.{lead.email} IN {{values}}"
        )
        out: dict[str, list[PriorReferral]] = {}
        excluded = {i[:15] for i in exclude_leads}
        for row in self._query_in(template, emails):
            if str(row.get(ref.lead) or "")[:15] in excluded:
                continue  # this very lead's referral (a replay), not an earlier one
            parent = row.get(relationship) if isinstance(row.get(relationship), Mapping) else {}
            email = str((parent or {}).get(lead.email) or "").lower()
            if row.get(ref.advocate):
                out.setdefault(email, []).append(
                    PriorReferral(str(row["Id"]), str(row[ref.advocate]), _dt(row.get("CreatedDate")))
                )
        return {k: tuple(v) for k, v in out.items()}

    def _routing_targets(self) -> tuple[dict[str, str], dict[str, str]]:
        if self._targets is None:
            queue_names, usernames = routing_targets(self._rules)
            queues: dict[str, str] = {}
            users: dict[str, str] = {}
            if queue_names:
                for row in self._query_in(
                    "SELECT Id, Name FROM Group WHERE Type = 'Queue' AND Name IN {values}",
                    sorted(queue_names),
                ):
                    queues[str(row["Name"]).lower()] = str(row["Id"])
            if usernames:
                for row in self._query_in(
                    "SELECT Id, Username, Name FROM User WHERE Username IN {values}", sorted(usernames)
                ):
                    users[str(row["Username"]).lower()] = str(row["Id"])
                    self._user_names[str(row["Id"])[:15]] = str(row.get("Name") or "")
            self._targets = (queues, users)
        return self._targets
