"""The org store without HTTP: ids, transactions and rollback, derived fields, the assignment rule."""

from __future__ import annotations

import pytest

from sfemulator.assignment import AssignmentRule, Criterion, RuleEntry
from sfemulator.errors import DmlError
from sfemulator.ids import IdFactory, looks_like_id, to18
from sfemulator.schema import build_schema
from sfemulator.seed import load_seed, resolve_seed
from sfemulator.store import Commit, Org, WriteContext


@pytest.mark.parametrize(
    ("id15", "id18"),
    [
        ("005i0000002MUqL", "005i0000002MUqLAAW"),
        ("00Di0000000icUB", "00Di0000000icUBEAY"),
        ("a0D30000001n7Pi", "a0D30000001n7PiEAI"),
        ("00Q5f000005bwLF", "00Q5f000005bwLFEAY"),
    ],
)
def test_checksum_suffix_matches_documented_ids(id15: str, id18: str) -> None:
    assert to18(id15) == id18
    assert to18(id18) == id18
    assert looks_like_id(id15) and looks_like_id(id18)
    assert not looks_like_id(id15 + "ZZZ" if id18[15:] != "ZZZ" else id15 + "AAA")


def test_minted_ids_are_valid_unique_and_prefixed() -> None:
    factory = IdFactory()
    ids = [factory.new("00Q") for _ in range(500)]
    assert len(set(ids)) == 500
    assert all(looks_like_id(i) and i.startswith("00Q") and len(i) == 18 for i in ids)


def test_custom_schema_comes_from_the_dx_source() -> None:
    schema = build_schema()
    advocate = schema.get("advocate__c")
    assert advocate is not None and advocate.key_prefix.startswith("a0")
    code = advocate.field("referral_code__c")
    assert code is not None and code.external_id and code.unique
    program = advocate.field("Program__c")
    assert program is not None and program.restricted and program.default == "Customer"
    lead = schema.get("Lead")
    assert lead is not None and lead.field("Advocate__c") is not None
    assert lead.field("Advocate__c").reference_to == ("Advocate__c",)  # type: ignore[union-attr]
    event = schema.get("Referral_Submitted__e")
    assert event is not None and event.is_platform_event


@pytest.fixture
def org() -> Org:
    org = Org()
    load_seed(org, resolve_seed("demo"))
    return org


def ctx(org: Org, **kw: object) -> WriteContext:
    assert org.integration_user_id is not None
    return WriteContext(user_id=org.integration_user_id, api_version="59.0", **kw)  # type: ignore[arg-type]


def test_failed_transaction_leaves_no_trace_and_no_commit(org: Org) -> None:
    commits: list[Commit] = []
    org.add_commit_listener(commits.append)
    with pytest.raises(DmlError), org.transaction(ctx(org)) as tx:
        tx.insert("Account", {"Name": "Kept?"})
        tx.insert("Account", {})
    assert not [r for r in org.records("Account") if r["Name"] == "Kept?"]
    assert commits == []


def test_savepoint_rolls_back_one_item_and_restores_unique_index(org: Org) -> None:
    with org.transaction(ctx(org)) as tx:
        advocate = tx.insert("Advocate__c", {"Name": "A", "Referral_Code__c": "CODE-1"})
        sp = tx.savepoint()
        tx.update("Advocate__c", advocate, {"Referral_Code__c": "CODE-2"})
        tx.rollback_to(sp)
    with pytest.raises(DmlError) as err, org.transaction(ctx(org)) as tx:
        tx.insert("Advocate__c", {"Name": "B", "Referral_Code__c": "code-1"})
    assert err.value.status_code == "DUPLICATE_VALUE"
    with org.transaction(ctx(org)) as tx:
        tx.insert("Advocate__c", {"Name": "C", "Referral_Code__c": "CODE-2"})


def test_update_change_lists_only_changed_fields(org: Org) -> None:
    commits: list[Commit] = []
    org.add_commit_listener(commits.append)
    with org.transaction(ctx(org, auto_assign=False)) as tx:
        lead = tx.insert("Lead", {"LastName": "Old", "Company": "C", "Email": "a@b.example"})
    with org.transaction(ctx(org, auto_assign=False)) as tx:
        tx.update("Lead", lead, {"LastName": "New", "Email": None, "Company": "C"})
    change = commits[-1].changes[0]
    assert change.change_type == "UPDATE"
    assert set(change.fields) == {"LastName", "Name", "Email", "LastModifiedDate"}
    assert change.fields["Email"] is None and change.fields["Name"] == "New"


def test_empty_string_is_stored_as_null(org: Org) -> None:
    with org.transaction(ctx(org, auto_assign=False)) as tx:
        lead = tx.insert("Lead", {"LastName": "N", "Company": "C", "Title": ""})
    found = org.get(lead)
    assert found is not None and "Title" not in found[1]


def test_auto_number_names(org: Org) -> None:
    with org.transaction(ctx(org)) as tx:
        first = tx.insert("Referral__c", {})
        second = tx.insert("Reward__c", {})
    assert org.get(first)[1]["Name"] == "REF-000001"  # type: ignore[index]
    assert org.get(second)[1]["Name"] == "RWD-000001"  # type: ignore[index]


def test_assignment_rule_first_match_wins_and_skips_inactive_users() -> None:
    active = {"u1", "u2", "q1"}
    rule = AssignmentRule(
        name="r",
        entries=[
            RuleEntry((Criterion("LeadSource", "equals", ("Web",)),), ("q1",)),
            RuleEntry((Criterion("State", "equals", ("CA", "WA")),), ("u1", "gone", "u2")),
        ],
        default_owner="q1",
    )
    assert rule.choose_owner({"LeadSource": "web", "State": "CA"}, active.__contains__) == "q1"
    owners = [rule.choose_owner({"State": "wa"}, active.__contains__) for _ in range(4)]
    assert owners == ["u1", "u2", "u1", "u2"]
    assert rule.choose_owner({"State": "NY"}, active.__contains__) == "q1"


def test_upsert_on_a_non_unique_external_id_with_two_matches_is_ambiguous() -> None:
    from dataclasses import replace

    from sfemulator.schema import Schema

    base = build_schema()
    contact = base.objects["Contact"]
    email = replace(contact.fields["Email"], external_id=True)
    objects = dict(base.objects)
    objects["Contact"] = replace(contact, fields={**contact.fields, "Email": email})
    org = Org(schema=Schema(list(objects.values())))
    load_seed(org, resolve_seed("empty"))
    with org.transaction(ctx(org)) as tx:
        first = tx.insert("Contact", {"LastName": "A", "Email": "same@x.example"})
        tx.insert("Contact", {"LastName": "B", "Email": "SAME@x.example"})
    with pytest.raises(DmlError) as err, org.transaction(ctx(org)) as tx:
        tx.upsert("Contact", "Email", "same@x.example", {"LastName": "C"})
    assert err.value.http_status == 300 and first in err.value.fields and len(err.value.fields) == 2
