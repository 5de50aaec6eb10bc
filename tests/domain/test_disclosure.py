"""The two-phase disclosure rule as a pure function (referrals/domain/disclosure.py)."""

from __future__ import annotations

import itertools

import pytest

from referrals.domain.codes import Disclosure, DisclosurePolicy, Side
from referrals.domain.disclosure import disclosure_of

FULL, DECISION = Disclosure.FULL, Disclosure.DECISION
ON_ACCEPT, ON_RECEIPT = DisclosurePolicy.ON_ACCEPT, DisclosurePolicy.ON_RECEIPT
UNITS = ("norrmalm", "sodermalm", None)


@pytest.mark.parametrize(
    ("side", "policy", "caller", "receiving", "disclosed_to", "glass", "expected"),
    [
        # The sender wrote it.
        (Side.SENDER, ON_ACCEPT, "ungdomsjouren", "norrmalm", None, False, FULL),
        # The receiving unit before it accepted or revealed.
        (Side.RECEIVER, ON_ACCEPT, "norrmalm", "norrmalm", None, False, DECISION),
        # ... after: disclosed to that unit.
        (Side.RECEIVER, ON_ACCEPT, "norrmalm", "norrmalm", "norrmalm", False, FULL),
        # Disclosed to the previous unit, redirected since (0008 clears it; belt and braces).
        (Side.RECEIVER, ON_ACCEPT, "sodermalm", "sodermalm", "norrmalm", False, DECISION),
        # A unit that is not the receiving one, without the glass, sees the decision view.
        (Side.RECEIVER, ON_ACCEPT, "norrmalm", "sodermalm", "sodermalm", False, DECISION),
        # Breaking the glass from another unit: the emergency read is whole.
        (Side.RECEIVER, ON_ACCEPT, "kungsholmen", "norrmalm", None, True, FULL),
        # on_receipt: everything at once.
        (Side.RECEIVER, ON_RECEIPT, "norrmalm", "norrmalm", None, False, FULL),
    ],
)
def test_the_rule(
    side: Side,
    policy: DisclosurePolicy,
    caller: str,
    receiving: str,
    disclosed_to: str | None,
    glass: bool,
    expected: Disclosure,
) -> None:
    seen = disclosure_of(
        side,
        policy=policy,
        caller_unit=caller,
        receiving_unit=receiving,
        disclosed_to=disclosed_to,
        break_glass=glass,
    )
    assert seen is expected


def test_on_accept_a_receiver_without_the_glass_sees_all_only_what_was_disclosed_to_it() -> None:
    """Over every combination of units: FULL exactly when disclosed to the receiving unit
    and the caller is that unit."""
    for caller, receiving, disclosed in itertools.product(UNITS, UNITS, UNITS):
        seen = disclosure_of(
            Side.RECEIVER,
            policy=ON_ACCEPT,
            caller_unit=caller,
            receiving_unit=receiving,
            disclosed_to=disclosed,
        )
        whole = disclosed is not None and disclosed == receiving == caller
        assert seen is (FULL if whole else DECISION), (caller, receiving, disclosed)
