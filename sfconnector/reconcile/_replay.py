"""The change events a missed stretch of the stream would have carried, rebuilt from records as they are now.

The sweep repairs through the daemon's own `BatchProcessor` (routing, then lifecycle: statuses, rewards,
totals, emails), so it hands it CometD-shaped messages. Their transaction keys are deterministic
(`reconcile:<what>:<record id>`), so the outbox keys derived from them are the same on every sweep and a
second sweep queues nothing new. Pure: rows in, messages out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sfconnector.mapping.model import SchemaMapping

SCHEMA = "reconcile"
OPPORTUNITY = "Opportunity"
DISQUALIFIED_STATUS = "Closed - Not Converted"


def _message(
    entity: str,
    change_type: str,
    record_id: str,
    fields: Mapping[str, Any],
    changed: list[str],
    transaction_key: str,
    moment: datetime | None,
) -> dict[str, Any]:
    header = {
        "entityName": entity,
        "recordIds": [record_id],
        "changeType": change_type,
        "changedFields": changed,
        "changeOrigin": "",  # nobody's client: never mistaken for the connector's own write
        "transactionKey": transaction_key,
        "sequenceNumber": 1,
        "commitTimestamp": int(moment.timestamp() * 1000) if moment else 0,
        "commitUser": "",
        "commitNumber": 0,
    }
    return {
        "channel": f"/data/{entity}ChangeEvent",
        "data": {
            "schema": SCHEMA,
            "payload": {**fields, "ChangeEventHeader": header},
            "event": {"replayId": 0},
        },
    }


def event_key(message: Mapping[str, Any]) -> str:
    """The key `events.RecordChange.key` gives the message (outbox keys of lifecycle writes contain it)."""
    header = message["data"]["payload"]["ChangeEventHeader"]
    return f"cdc:{header['transactionKey']}:{header['sequenceNumber']}:{header['entityName']}"


def lead_created(row: Mapping[str, Any], mapping: SchemaMapping, created: datetime) -> dict[str, Any]:
    """The CREATE of a referral lead, with its fields as they are now (its owner standing for the standard one)."""
    fields = {k: v for k, v in row.items() if k != "Id" and v is not None}
    return _message(
        mapping.lead.object, "CREATE", str(row["Id"]), fields, [], f"reconcile:lead:{row['Id']}", created
    )


def lead_converted(row: Mapping[str, Any], mapping: SchemaMapping, when: datetime | None) -> dict[str, Any]:
    """The UPDATE that converted a lead (`row` with IsConverted and the Converted*Id fields)."""
    lead = mapping.lead
    fields = {
        lead.is_converted: True,
        lead.converted_contact: row.get(lead.converted_contact),
        lead.converted_opportunity: row.get(lead.converted_opportunity),
    }
    return _message(
        lead.object,
        "UPDATE",
        str(row["Id"]),
        fields,
        list(fields),
        f"reconcile:converted:{row['Id']}",
        when,
    )


def lead_disqualified(lead_id: str, mapping: SchemaMapping, when: datetime | None) -> dict[str, Any]:
    lead = mapping.lead
    return _message(
        lead.object,
        "UPDATE",
        lead_id,
        {lead.status: DISQUALIFIED_STATUS},
        [lead.status],
        f"reconcile:disqualified:{lead_id}",
        when,
    )


def opportunity_outcome(opportunity: Mapping[str, Any], when: datetime | None) -> dict[str, Any]:
    """A stage change of an opportunity; the lifecycle reads the opportunity as it is now and follows it.

    The key names the outcome and when the opportunity last changed: the same on every sweep until it moves
    again (won, lost, won again: a fresh key each time).
    """
    outcome = "won" if opportunity.get("IsWon") else "lost" if opportunity.get("IsClosed") else "open"
    fields = {"StageName": opportunity.get("StageName")}
    return _message(
        OPPORTUNITY,
        "UPDATE",
        str(opportunity["Id"]),
        fields,
        ["StageName"],
        f"reconcile:opportunity:{opportunity['Id']}:{outcome}:{int(when.timestamp()) if when else 0}",
        when,
    )
