"""The policy's rules for situations the use cases rarely or never produce.

A draft never names a receiving unit through the API (routing sets the unit in the same
step that submits it, and nothing leads back to draft): the receiver's draft rule is
unreachable over HTTP, so its mutant survives every HTTP test.  A note whose reader and
author share a unit but not a side needs one unit on both sides of a referral, which
only an admin's re-registration of a unit's kind produces (an HTTP test of that is in
tests/api/test_redirect_and_deadlines.py).  The rules are there so a later change (a
way back to draft, a row written by an older version) cannot open either door; the
policy is a set of pure functions, so state them against it directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from referrals.auth import policy
from referrals.auth.principal import Principal, Role
from referrals.domain.codes import NoteVisibility, Side, Status


@dataclass(frozen=True)
class Scope:
    status: str
    sending_unit_id: str
    receiving_unit_id: str | None


def caseworker(unit: str) -> Principal:
    return Principal(
        issuer="https://idp.test", subject="cw", roles=frozenset({Role.CASEWORKER}), unit=unit
    )


def test_a_draft_naming_the_receiving_unit_is_still_hidden_from_it() -> None:
    draft = Scope(Status.DRAFT, "ungdomsjouren", "norrmalm")
    assert policy.side_of(caseworker("norrmalm"), draft) is None
    submitted = Scope(Status.REQUESTED, "ungdomsjouren", "norrmalm")
    assert policy.side_of(caseworker("norrmalm"), submitted) is Side.RECEIVER


@pytest.mark.parametrize(
    ("reader", "author"), [(Side.RECEIVER, Side.SENDER), (Side.SENDER, Side.RECEIVER)]
)
def test_an_internal_note_stays_on_its_side_even_within_one_unit(
    reader: Side, author: Side
) -> None:
    internal, shared = NoteVisibility.INTERNAL, NoteVisibility.SHARED
    assert not policy.may_read_note(reader, "norrmalm", author, "norrmalm", internal)
    assert policy.may_read_note(reader, "norrmalm", author, "norrmalm", shared)
    assert policy.may_read_note(author, "norrmalm", author, "norrmalm", internal)
