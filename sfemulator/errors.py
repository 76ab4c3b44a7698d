"""Errors the emulator reports the way Salesforce does."""

from __future__ import annotations

from typing import Any


class DmlError(Exception):
    """A failed write of one record: becomes a SaveResult error (`statusCode`) or a REST error (`errorCode`)."""

    def __init__(
        self, status_code: str, message: str, fields: list[str] | None = None, http_status: int = 400
    ):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.fields = fields or []
        self.http_status = http_status

    def save_error(self) -> dict[str, Any]:
        """The form used inside SaveResults (collections, composite item bodies)."""
        return {"statusCode": self.status_code, "message": self.message, "fields": self.fields}

    def rest_error(self) -> dict[str, Any]:
        """The form used in a REST error array."""
        body: dict[str, Any] = {"message": self.message, "errorCode": self.status_code}
        if self.fields or self.status_code in (
            "ENTITY_IS_DELETED",
            "REQUIRED_FIELD_MISSING",
            "DUPLICATE_VALUE",
        ):
            body["fields"] = self.fields
        return body


class ApiError(Exception):
    """A REST call failing as a whole: status plus the JSON error array."""

    def __init__(self, http_status: int, error_code: str, message: str, fields: list[str] | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.error_code = error_code
        self.message = message
        self.fields = fields

    def body(self) -> list[dict[str, Any]]:
        item: dict[str, Any] = {"message": self.message, "errorCode": self.error_code}
        if self.fields is not None:
            item["fields"] = self.fields
        return [item]


def not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")
