"""The policy's rules that the service's own data never puts to the test.

Two rules of referrals/auth/policy.py guard situations the use cases do not produce
today: a draft that already names a receiving unit (routing sets the unit only when the
draft is submitted) and a note whose author and reader share a unit but not a side (a
referral is sent from a referring unit to a receiving one, and a unit has one kind).
Through the API both are unreachable, so the mutation check's mutants of them survive
every HTTP test; the rules are there so that a later change (a redirect back to draft,
a unit serving as both kinds, a row written by an older version) cannot open either
door.  The policy is a set of pure functions: state the rules against it directly.
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
