"""The daemon's I/O edge towards Salesforce: tokens, the REST client and the API-limit throttle."""

from ._types import (
    ActionResult,
    ApiErrorItem,
    ApiUsage,
    AuthSettings,
    CompositeSubrequest,
    CompositeSubresponse,
    SalesforceSettings,
    SaveResult,
    Token,
)
from .auth import TokenProvider
from .client import SalesforceClient
from .errors import AuthenticationFailed, item_retryable
from .limits import parse_limit_info, throttle_delay

__all__ = [
    "ActionResult",
    "ApiErrorItem",
    "ApiUsage",
    "AuthSettings",
    "AuthenticationFailed",
    "CompositeSubrequest",
    "CompositeSubresponse",
    "SalesforceClient",
    "SalesforceSettings",
    "SaveResult",
    "Token",
    "TokenProvider",
    "item_retryable",
    "parse_limit_info",
    "throttle_delay",
]
