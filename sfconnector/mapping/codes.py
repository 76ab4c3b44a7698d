"""Referral code normalisation: the same code typed on a card, said aloud or pasted from a link matches."""

from __future__ import annotations

import re

from sfconnector.mapping.model import CodePolicy

_SPACES = re.compile(r"\s+")
# Hyphen-minus and the dashes people (and word processors) type instead of it.
_DASHES = re.compile("[-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d]")


def normalise_code(raw: str, policy: CodePolicy) -> str:
    """The referral code as stored on the advocate: whitespace and dashes removed as configured, case folded.

    Every other character (quotes, backslashes, percent signs) is kept as is: escaping for SOQL is the query
    builder's job, and silently dropping characters could match the wrong advocate.
    """
    code = raw.strip()
    if policy.strip_spaces:
        code = _SPACES.sub("", code)
    if policy.strip_dashes:
        code = _DASHES.sub("", code)
    if policy.case == "upper":
        code = code.upper()
    elif policy.case == "lower":
        code = code.lower()
    return code
