"""One reader of referred leads, for every consumer: the pipeline (a code added later), `explain --lead`
and the reconciliation sweep.

A change event carries only what changed, so whoever re-reads a lead must read every field a decision may
look at: the mapped fields, attribution's dates and the `lead.<Field>` conditions of the routing rules.
The list is computed once from the compiled config, so the three readers cannot drift apart and decide the
same lead three ways.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sfconnector.mapping.model import SchemaMapping
from sfconnector.rules.model import RoutingRules
from sfconnector.rules.routing import fields_read
from sfconnector.soql import IdList, chunked_in, soql


class Querier(Protocol):
    def query(self, soql: str) -> list[dict[str, Any]]: ...


def lead_fields(mapping: SchemaMapping, routing: RoutingRules) -> tuple[str, ...]:
    """Every lead column a referral decision reads: the mapping's, attribution's dates, the rules' own."""
    lead = mapping.lead
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
        "LastModifiedDate",
    ]
    from_rules, _ = fields_read(routing)
    fields: list[str] = []
    seen: set[str] = set()
    for name in [*base, *sorted(from_rules)]:
        if name.lower() not in seen:  # API names are case-insensitive: SOQL refuses a duplicate column
            seen.add(name.lower())
            fields.append(name)
    return tuple(fields)


class LeadReader:
    """Reads leads by id with `lead_fields`, in IN-list chunks that stay under URI limits."""

    def __init__(self, client: Querier, mapping: SchemaMapping, routing: RoutingRules) -> None:
        self._client = client
        self._object = mapping.lead.object
        self.fields = lead_fields(mapping, routing)

    def read(self, lead_ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """Lead id (as Salesforce returns it) -> fields; ids that match no lead are left out."""
        wanted = sorted(set(lead_ids))
        template = f"SELECT {', '.join(self.fields)} FROM {self._object} WHERE Id IN {{ids}}"
        found: dict[str, Mapping[str, Any]] = {}
        for chunk in chunked_in(wanted):
            for row in self._client.query(soql(template, ids=IdList(chunk))):
                found[str(row["Id"])] = {k: v for k, v in row.items() if k != "attributes"}
        return found
