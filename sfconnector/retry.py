"""The one place retry policies are built (on tenacity).

Every policy:

- retries only errors that say they are retryable (``exc.retryable is True``), except
  ``RequestLimitExceeded``: a spent API allocation is waited out by the caller, not hammered in a loop;
- stops after ``attempts`` tries or ``timeout`` seconds, whichever comes first, and re-raises the last real
  error (never a ``RetryError``);
- waits jittered exponential intervals;
- logs one ``retry.scheduled`` line per wait;
- never retries cancellation (``asyncio.CancelledError`` and ``KeyboardInterrupt`` are not ``Exception``s
  with ``retryable``).

Tests call :func:`set_testing` (or use :func:`retries_without_sleep`) so policies retry at once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
import tenacity

from sfconnector.errors import RequestLimitExceeded

T = TypeVar("T")

_log = structlog.get_logger("sfconnector.retry")


@dataclass
class _TestingState:
    enabled: bool = False
    attempts: int | None = None


_testing = _TestingState()


def set_testing(enabled: bool, *, attempts: int | None = None) -> None:
    """Make every policy retry without sleeping (and optionally cap its attempts)."""
    _testing.enabled = enabled
    _testing.attempts = attempts


@contextlib.contextmanager
def retries_without_sleep(attempts: int | None = None) -> Iterator[None]:
    """Context manager form of :func:`set_testing`, restoring the previous state on exit."""
    previous = (_testing.enabled, _testing.attempts)
    set_testing(True, attempts=attempts)
    try:
        yield
    finally:
        set_testing(previous[0], attempts=previous[1])


def is_retryable(exc: BaseException) -> bool:
    """True for errors that declare themselves retryable and do not ask for a long pause."""
    if not isinstance(exc, Exception):
        return False
    if isinstance(exc, RequestLimitExceeded):
        return False
    return getattr(exc, "retryable", False) is True


def backoff_seconds(attempt: int, *, initial: float, maximum: float, jitter: float, rand: float) -> float:
    """Jittered exponential backoff for attempt number ``attempt`` (1-based); ``rand`` is uniform in [0, 1).

    Pure, so the schedule can be pinned down in tests and reused for outbox retries persisted in SQLite.
    """
    base: float = min(maximum, initial * (2.0 ** max(0, attempt - 1)))
    return min(maximum, base + jitter * rand * base)


def _no_sleep(_seconds: float) -> None:
    return None


async def _no_sleep_async(_seconds: float) -> None:
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """A bounded retry policy; build one per kind of call (``name`` appears in the log line)."""

    name: str
    attempts: int = 5
    timeout: float = 60.0
    wait_initial: float = 0.5
    wait_max: float = 20.0
    wait_jitter: float = 1.0
    retry_on: Callable[[BaseException], bool] = field(default=is_retryable)

    def _kwargs(self) -> dict[str, Any]:
        attempts = self.attempts if _testing.attempts is None else min(self.attempts, _testing.attempts)
        stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(max(1, attempts))
        if not _testing.enabled:
            stop = stop | tenacity.stop_after_delay(self.timeout)
        wait = tenacity.wait_exponential_jitter(
            initial=self.wait_initial, max=self.wait_max, jitter=self.wait_jitter
        )
        return {
            "stop": stop,
            "wait": wait,
            "retry": tenacity.retry_if_exception(self.retry_on),
            "reraise": True,
            "before_sleep": self._log_wait,
        }

    def _log_wait(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        _log.warning(
            "retry.scheduled",
            policy=self.name,
            attempt=state.attempt_number,
            wait_s=round(state.next_action.sleep, 3) if state.next_action else None,
            error_type=type(exc).__name__ if exc else None,
            error=str(exc) if exc else None,
        )

    def retrying(self) -> tenacity.Retrying:
        """A tenacity ``Retrying`` for ``for attempt in policy.retrying(): with attempt: ...`` loops."""
        return tenacity.Retrying(sleep=_no_sleep if _testing.enabled else time.sleep, **self._kwargs())

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` under this policy."""
        result: T = self.retrying()(fn, *args, **kwargs)
        return result

    async def call_async(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await ``fn`` under this policy (cancellation propagates at once)."""
        extra: dict[str, Any] = {"sleep": _no_sleep_async} if _testing.enabled else {}
        retrying = tenacity.AsyncRetrying(**extra, **self._kwargs())
        result: T = await retrying(fn, *args, **kwargs)
        return result


# Policies the I/O edge uses; the pipeline may build its own with RetryPolicy(...).
SALESFORCE_READ = RetryPolicy("salesforce.read", attempts=5, timeout=60.0)
SALESFORCE_WRITE = RetryPolicy("salesforce.write", attempts=4, timeout=45.0)
AUTH = RetryPolicy("salesforce.auth", attempts=4, timeout=30.0, wait_initial=1.0)
