"""Two-phase disclosure: what the receiving unit sees before it has accepted.

Until the receiving unit accepts (policy ``on_accept``), its caseworkers see what they
need to decide — priority, categories, age in years, district, legal basis, the sending
unit, the deadline — and not who the referral is about (name, personal number, birth
date, phone, guardian) nor the free text (narrative, place met, the other side's notes
and reasons).  Accepting discloses the rest to the unit; so does an explicit, reason-coded
``reveal`` before deciding.  Both are recorded per unit (``identity_disclosed_to``): a
redirect moves the referral to a unit that has seen nothing.
"""

from __future__ import annotations

from referrals.domain.codes import Disclosure, DisclosurePolicy, Side


def disclosure_of(
    side: Side,
    *,
    policy: DisclosurePolicy,
    caller_unit: str | None,
    receiving_unit: str | None,
    disclosed_to: str | None,
    break_glass: bool = False,
) -> Disclosure:
    """What a caller on ``side`` sees of a referral.

    The sender wrote it and sees it all.  A caseworker of another unit reading through a
    break of the glass reads it all: that emergency read is audited with its reason and
    reviewed.  The receiving unit sees it all once it has been disclosed to it — on
    accept, by a reveal, or at once under ``on_receipt``; anyone else sees the decision
    view at most."""
    if side is Side.SENDER or policy is DisclosurePolicy.ON_RECEIPT or break_glass:
        return Disclosure.FULL
    if disclosed_to is not None and disclosed_to == receiving_unit == caller_unit:
        return Disclosure.FULL
    return Disclosure.DECISION
