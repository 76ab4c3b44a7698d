"""Retry policies (bounded, only retryable errors, logged waits, no sleeping in tests) and log redaction."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from sfconnector.errors import InvalidRequest, RequestLimitExceeded, ServerUnavailable
from sfconnector.logging import REDACTED, configure_logging, redact_secrets, redact_text
from sfconnector.retry import RetryPolicy, backoff_seconds, retries_without_sleep


class Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def test_retryable_errors_are_retried_until_success() -> None:
    """Two transient failures then success: three calls, the result returned."""
    fn = Flaky([ServerUnavailable("503"), ServerUnavailable("503")])
    with retries_without_sleep():
        assert RetryPolicy("t", attempts=5).call(fn) == "ok"
    assert fn.calls == 3


def test_attempts_are_bounded_and_the_real_error_is_reraised() -> None:
    """After the last attempt the last real error propagates (not a tenacity RetryError)."""
    fn = Flaky([ServerUnavailable(f"503 #{i}") for i in range(10)])
    with retries_without_sleep(), pytest.raises(ServerUnavailable, match="503 #2"):
        RetryPolicy("t", attempts=3).call(fn)
    assert fn.calls == 3


@pytest.mark.parametrize(
    "error", [InvalidRequest("bad field"), RequestLimitExceeded("limit"), ValueError("bug")]
)
def test_fatal_and_limit_errors_are_not_retried(error: Exception) -> None:
    """Fatal errors, plain bugs and a spent API allocation are raised at the first failure."""
    fn = Flaky([error])
    with retries_without_sleep(), pytest.raises(type(error)):
        RetryPolicy("t", attempts=5).call(fn)
    assert fn.calls == 1


def test_each_wait_is_logged_with_a_stable_event_name() -> None:
    """One retry.scheduled line per wait, carrying policy name and attempt."""
    fn = Flaky([ServerUnavailable("503"), ServerUnavailable("503")])
    with structlog.testing.capture_logs() as logs, retries_without_sleep():
        RetryPolicy("salesforce.write", attempts=5).call(fn)
    waits = [e for e in logs if e["event"] == "retry.scheduled"]
    assert [(w["policy"], w["attempt"]) for w in waits] == [("salesforce.write", 1), ("salesforce.write", 2)]


async def _async_flaky(fn: Flaky) -> str:
    return fn()


def test_async_policy_retries_without_sleeping() -> None:
    """call_async retries the same way."""
    import asyncio

    fn = Flaky([ServerUnavailable("x")])
    with retries_without_sleep():
        assert asyncio.run(RetryPolicy("t").call_async(_async_flaky, fn)) == "ok"
    assert fn.calls == 2


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    """The persisted outbox backoff doubles per attempt, caps at the maximum, and jitter only adds."""
    plain = [backoff_seconds(a, initial=2, maximum=600, jitter=0.5, rand=0.0) for a in range(1, 12)]
    assert plain[:4] == [2, 4, 8, 16] and plain[-1] == 600
    assert backoff_seconds(3, initial=2, maximum=600, jitter=0.5, rand=0.99) == pytest.approx(8 * 1.495)


def test_redaction_processor_hides_secrets_at_any_depth() -> None:
    """Tokens, secrets, passwords, assertions and Authorization headers never reach the renderer."""
    event = {
        "event": "auth.token_issued",
        "access_token": "00Dx!AR8AQ",
        "headers": {"Authorization": "Bearer 00Dx!AR8AQ", "Accept": "application/json"},
        "form": [{"client_secret": "s3cret", "assertion": "eyJ.x.y"}],
        "password": "hunter2",
        "note": "POST grant_type=password&password=hunter2&client_id=abc",
        "instance_url": "https://org.example",
    }
    out = redact_secrets(None, "info", dict(event))
    text = json.dumps(out)
    for secret in ("00Dx!AR8AQ", "s3cret", "eyJ.x.y", "hunter2"):
        assert secret not in text
    assert out["headers"]["Accept"] == "application/json"
    assert out["instance_url"] == "https://org.example"
    assert out["headers"]["Authorization"] == REDACTED


def test_redact_text_handles_bearer_and_json_secrets() -> None:
    """Free text quoting a header or a JSON body is scrubbed too."""
    text = redact_text('Authorization: Bearer abcdefghijklmnop {"access_token": "zzz123"}')
    assert "abcdefghijklmnop" not in text and "zzz123" not in text


def test_configured_logger_writes_json_lines_without_secrets() -> None:
    """Not on a TTY, configure_logging renders JSON lines, with secrets redacted."""
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    try:
        structlog.get_logger().info("auth.token_issued", access_token="tok-secret", method="jwt")
        structlog.get_logger().debug("hidden.debug")
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["auth.token_issued"]
    assert lines[0]["access_token"] == REDACTED and lines[0]["method"] == "jwt"
    assert "tok-secret" not in stream.getvalue()


def test_standard_library_logs_are_rendered_and_redacted_too() -> None:
    """A library logging through `logging` gets JSON output with secrets scrubbed from its message."""
    import logging

    stream = io.StringIO()
    configure_logging("info", stream=stream)
    try:
        logging.getLogger("urllib3.connectionpool").warning(
            "retrying with Authorization: Bearer abcdefghijklmnopq"
        )
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    (line,) = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert line["logger"] == "urllib3.connectionpool" and line["level"] == "warning"
    assert "abcdefghijklmnopq" not in stream.getvalue()
