"""The one error tree of sfconnector.

Every error the daemon raises on purpose derives from `SfconnectorError`. Each class says whether retrying
the same operation later can succeed (`retryable`); the retry policy and the outbox look only at that flag,
never at a library's exception type. Third-party errors are translated where they enter, with
`raise ... from exc`.

    SfconnectorError                      retryable?
    ├── ConfigError                       no   one or more ConfigProblem(file, line, col, message, hint)
    ├── RuleError                         no   a rule could not be applied to one event (dead letter)
    ├── AuthError                         no   login refused: bad client id, key, secret or user
    └── SalesforceApiError                per instance (error_code, status, message, fields)
        ├── SessionExpired                yes  INVALID_SESSION_ID / 401: refresh the token, then retry
        ├── RequestLimitExceeded          yes  REQUEST_LIMIT_EXCEEDED: back off for a long while
        ├── RecordLocked                  yes  UNABLE_TO_LOCK_ROW: another transaction holds the row
        ├── ServerUnavailable             yes  5xx, SERVER_UNAVAILABLE, network failure or timeout
        ├── RecordNotFound                no   NOT_FOUND / ENTITY_IS_DELETED
        └── InvalidRequest                no   INVALID_FIELD, MALFORMED_QUERY, validation rules, ...

`api_error(status, error_code, message)` picks the right class for an error Salesforce returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "AuthError",
    "ConfigError",
    "ConfigProblem",
    "InvalidRequest",
    "RecordLocked",
    "RecordNotFound",
    "RequestLimitExceeded",
    "RuleError",
    "SalesforceApiError",
    "ServerUnavailable",
    "SessionExpired",
    "SfconnectorError",
    "api_error",
]


class SfconnectorError(Exception):
    """Root of every error sfconnector raises on purpose."""

    retryable: bool = False


@dataclass(frozen=True, order=True)
class ConfigProblem:
    """One thing wrong with a config file, at a 1-based line and column."""

    file: str
    line: int
    col: int
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.col}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(SfconnectorError):
    """The configuration is unusable; `problems` lists everything wrong with it, in file order."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems: tuple[ConfigProblem, ...] = tuple(sorted(set(problems)))
        super().__init__("\n".join(str(p) for p in self.problems) or "invalid configuration")


class RuleError(SfconnectorError):
    """A compiled rule could not be applied to one event's data; the event goes to the dead letters."""


class AuthError(SfconnectorError):
    """Salesforce refused to issue a token: retrying with the same credentials will not help."""

    def __init__(self, error: str, description: str = "") -> None:
        self.error = error
        self.description = description
        super().__init__(f"{error}: {description}" if description else error)


class SalesforceApiError(SfconnectorError):
    """Salesforce answered a request with an error (or did not answer at all)."""

    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        error_code: str = "",
        status: int | None = None,
        fields: Sequence[str] = (),
        retryable: bool | None = None,
    ) -> None:
        self.message = message
        self.error_code = error_code
        self.status = status
        self.fields = tuple(fields)
        self.retryable = self.default_retryable if retryable is None else retryable
        where = f" [{', '.join(self.fields)}]" if self.fields else ""
        code = f"{error_code}: " if error_code else ""
        http = f"HTTP {status} " if status is not None else ""
        super().__init__(f"{http}{code}{message}{where}")


class SessionExpired(SalesforceApiError):
    """The access token is no longer valid; refresh it and retry."""

    default_retryable = True


class RequestLimitExceeded(SalesforceApiError):
    """The org's API allocation (or concurrent request limit) is used up; wait before retrying."""

    default_retryable = True


class RecordLocked(SalesforceApiError):
    """Another transaction holds a lock on the record; retry after a short wait."""

    default_retryable = True


class ServerUnavailable(SalesforceApiError):
    """Salesforce or the network failed transiently (5xx, timeout, connection reset)."""

    default_retryable = True


class RecordNotFound(SalesforceApiError):
    """The record does not exist or was deleted."""


class InvalidRequest(SalesforceApiError):
    """The request itself is wrong (bad field, query, value or validation rule): retrying cannot help."""


_BY_CODE: dict[str, type[SalesforceApiError]] = {
    "INVALID_SESSION_ID": SessionExpired,
    "INVALID_AUTH_HEADER": SessionExpired,
    "REQUEST_LIMIT_EXCEEDED": RequestLimitExceeded,
    "TOTAL_REQUESTS_LIMIT_EXCEEDED": RequestLimitExceeded,
    "UNABLE_TO_LOCK_ROW": RecordLocked,
    "SERVER_UNAVAILABLE": ServerUnavailable,
    "UNKNOWN_EXCEPTION": ServerUnavailable,
    "QUERY_TIMEOUT": ServerUnavailable,
    "NOT_FOUND": RecordNotFound,
    "ENTITY_IS_DELETED": RecordNotFound,
}


def api_error(
    status: int | None, error_code: str, message: str, fields: Sequence[str] = ()
) -> SalesforceApiError:
    """The error class for what Salesforce answered: by errorCode first, then by HTTP status."""
    cls = _BY_CODE.get(error_code)
    if cls is None:
        if status == 401:
            cls = SessionExpired
        elif status is not None and (status >= 500 or status == 429):
            cls = ServerUnavailable
        elif status == 404:
            cls = RecordNotFound
        else:
            cls = InvalidRequest
    return cls(message, error_code=error_code, status=status, fields=fields)
