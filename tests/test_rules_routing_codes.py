"""Referral code normalisation: what people type matches what the advocate record holds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfconnector.mapping import CodePolicy, normalise_code

DEFAULT = CodePolicy()


@pytest.mark.parametrize(
    ("raw", "policy", "expected"),
    [
        ("GRACE-1001", DEFAULT, "GRACE1001"),
        ("grace-1001", DEFAULT, "GRACE1001"),
        ("  Grace 1001 ", DEFAULT, "GRACE1001"),
        ("g r a c e - 1 0 0 1", DEFAULT, "GRACE1001"),
        ("GRACE\u20131001", DEFAULT, "GRACE1001"),  # an en dash from a word processor
        ("GRACE\u00a01001", DEFAULT, "GRACE1001"),  # a no-break space from a web form
        ("grace\t-\n1001", DEFAULT, "GRACE1001"),
        ("O'BRIEN-7", DEFAULT, "O'BRIEN7"),  # quotes are kept: escaping is the query builder's job
        ("back\\slash-1", DEFAULT, "BACK\\SLASH1"),
        ('say "hi"-2', DEFAULT, 'SAY"HI"2'),
        ("50%_off-3", DEFAULT, "50%_OFF3"),
        ("Grace-1001", CodePolicy(case="lower"), "grace1001"),
        ("Grace-1001", CodePolicy(case="preserve"), "Grace1001"),
        ("Grace 10-01", CodePolicy(strip_dashes=False), "GRACE10-01"),
        (" Grace 10-01 ", CodePolicy(strip_spaces=False), "GRACE 1001"),  # the ends are always trimmed
    ],
)
def test_normalise_code_table(raw: str, policy: CodePolicy, expected: str) -> None:
    assert normalise_code(raw, policy) == expected


@given(st.text(), st.sampled_from(["upper", "lower", "preserve"]), st.booleans(), st.booleans())
def test_normalising_twice_changes_nothing(raw: str, case: str, spaces: bool, dashes: bool) -> None:
    policy = CodePolicy(case=case, strip_spaces=spaces, strip_dashes=dashes)  # type: ignore[arg-type]
    once = normalise_code(raw, policy)
    assert normalise_code(once, policy) == once


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1))
def test_spaces_and_dashes_never_survive_the_default_policy(raw: str) -> None:
    code = normalise_code(raw, DEFAULT)
    assert not any(ch.isspace() for ch in code)
    assert "-" not in code
