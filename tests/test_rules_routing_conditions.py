"""Conditions as compiled from YAML, evaluated on plain values: every operator, and the why it reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sfconnector.config import load_config
from sfconnector.rules.conditions import Condition, evaluate, subjects

HEADER = """\
salesforce:
  login_url: https://login.salesforce.com
  auth: {method: jwt, client_id: x, username: u@example.com, private_key_file: k.pem}
rules:
  routing:
    rules:
      - name: r
        then: keep_standard
        when: """


@pytest.fixture
def compile_when(tmp_path: Path) -> Any:
    def compile_(when: str) -> Condition:
        path = tmp_path / "c.yaml"
        path.write_text(HEADER + when + "\n", encoding="utf-8")
        condition = load_config(path, env={}).routing.rules[0].when
        assert condition is not None
        return condition

    return compile_


VALUES: dict[str, Any] = {
    "channel": "Social",
    "lead.Company": "Acme Inc.",
    "lead.NumberOfEmployees": 250,
    "lead.AnnualRevenue": None,
    "lead.CreatedDate": "2026-11-20T10:00:00.000+0000",
    "advocate.Program__c": "Partner",
    "advocate.Email_Opt_Out__c": False,
}


@pytest.mark.parametrize(
    ("when", "matched"),
    [
        ("{channel: Social}", True),
        ("{channel: social}", True),  # text compares case-insensitively, like SOQL
        ("{channel: Web}", False),
        ("{channel: [Web, Social]}", True),
        ("{channel: {in: [Web, Card]}}", False),
        ("{channel: {not_equals: Web}}", True),
        ("{lead.Company: {exists: true}}", True),
        ("{lead.AnnualRevenue: {exists: true}}", False),
        ("{lead.AnnualRevenue: {exists: false}}", True),
        ("{lead.Company: {matches: 'Inc\\.?$'}}", True),
        ("{lead.Company: {matches: '^inc'}}", False),
        ("{lead.Company: {matches: '(?i)^acme'}}", True),
        ("{lead.NumberOfEmployees: {gt: 100}}", True),
        ("{lead.NumberOfEmployees: {ge: 250, lt: 251}}", True),
        ("{lead.NumberOfEmployees: {le: 249}}", False),
        ("{lead.AnnualRevenue: {gt: 0}}", False),  # an empty value compares with nothing
        ("{lead.CreatedDate: {ge: 2026-11-01}}", True),
        ("{lead.CreatedDate: {lt: '2026-11-20'}}", False),
        ("{advocate.Email_Opt_Out__c: false}", True),
        ("{not: {channel: Social}}", False),
        ("{any: [{channel: Web}, {advocate.Program__c: Partner}]}", True),
        ("{all: [{channel: Social}, {advocate.Program__c: Customer}]}", False),
        ("{channel: Social, advocate.Program__c: Partner}", True),
    ],
)
def test_operator_table(compile_when: Any, when: str, matched: bool) -> None:
    assert evaluate(compile_when(when), VALUES.get)[0] is matched


def test_why_names_the_failing_part_of_a_conjunction(compile_when: Any) -> None:
    condition = compile_when("{channel: Social, advocate.Program__c: Customer}")
    assert evaluate(condition, VALUES.get) == (False, "advocate.Program__c is 'Partner', not 'Customer'")


def test_why_lists_every_alternative_when_none_holds(compile_when: Any) -> None:
    condition = compile_when("{any: [{channel: Web}, {lead.NumberOfEmployees: {gt: 1000}}]}")
    assert evaluate(condition, VALUES.get) == (
        False,
        "none of: channel is 'Social', not 'Web'; lead.NumberOfEmployees is 250, not > 1000",
    )


def test_subjects_lists_the_fields_a_condition_reads(compile_when: Any) -> None:
    condition = compile_when("{any: [{channel: Web}, {not: {lead.Company: {exists: true}}}]}")
    assert subjects(condition) == {"channel", "lead.Company"}


def test_regex_on_hostile_text_is_a_plain_search(compile_when: Any) -> None:
    condition = compile_when("""{lead.Company: {matches: "O'Brien\\\\\\\\"}}""")
    assert evaluate(condition, {"lead.Company": "O'Brien\\ & Sons"}.get)[0] is True
