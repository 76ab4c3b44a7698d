"""The error tree: config problems print as file:line:col, API errors say whether a retry can help."""

from __future__ import annotations

import pytest

from sfconnector.errors import (
    ConfigError,
    ConfigProblem,
    InvalidRequest,
    RecordLocked,
    RecordNotFound,
    RequestLimitExceeded,
    SalesforceApiError,
    ServerUnavailable,
    SessionExpired,
    SfconnectorError,
    api_error,
)


def test_problem_prints_as_file_line_col_message_and_hint() -> None:
    assert str(ConfigProblem("c.yaml", 3, 5, "unknown key 'x'", "did you mean 'y'?")) == (
        "c.yaml:3:5: unknown key 'x' (did you mean 'y'?)"
    )
    assert str(ConfigProblem("c.yaml", 1, 1, "the file is empty")) == "c.yaml:1:1: the file is empty"


def test_config_error_lists_problems_in_file_order_once() -> None:
    late = ConfigProblem("c.yaml", 9, 1, "b")
    early = ConfigProblem("c.yaml", 2, 7, "a")
    error = ConfigError([late, early, late])
    assert error.problems == (early, late)
    assert str(error) == "c.yaml:2:7: a\nc.yaml:9:1: b"
    assert isinstance(error, SfconnectorError) and not error.retryable


@pytest.mark.parametrize(
    ("status", "code", "cls", "retryable"),
    [
        (401, "INVALID_SESSION_ID", SessionExpired, True),
        (403, "REQUEST_LIMIT_EXCEEDED", RequestLimitExceeded, True),
        (400, "UNABLE_TO_LOCK_ROW", RecordLocked, True),
        (503, "SERVER_UNAVAILABLE", ServerUnavailable, True),
        (500, "UNKNOWN_EXCEPTION", ServerUnavailable, True),
        (502, "", ServerUnavailable, True),
        (None, "", InvalidRequest, False),
        (404, "NOT_FOUND", RecordNotFound, False),
        (400, "ENTITY_IS_DELETED", RecordNotFound, False),
        (400, "INVALID_FIELD", InvalidRequest, False),
        (400, "MALFORMED_QUERY", InvalidRequest, False),
        (400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", InvalidRequest, False),
        (401, "", SessionExpired, True),
    ],
)
def test_api_error_class_and_retryability_by_error_code_then_status(
    status: int | None, code: str, cls: type[SalesforceApiError], retryable: bool
) -> None:
    error = api_error(status, code, "message", ["Field__c"])
    assert type(error) is cls
    assert error.retryable is retryable
    assert (error.status, error.error_code, error.fields) == (status, code, ("Field__c",))


def test_api_error_message_names_status_code_and_fields() -> None:
    error = api_error(400, "INVALID_FIELD", "No such column 'Foo__c'", ["Foo__c"])
    assert str(error) == "HTTP 400 INVALID_FIELD: No such column 'Foo__c' [Foo__c]"


def test_retryability_can_be_overridden_per_instance() -> None:
    assert not RecordLocked("still locked after the last attempt", retryable=False).retryable
