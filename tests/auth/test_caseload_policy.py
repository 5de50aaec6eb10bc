"""The unit lead is a caseworker of its unit in every rule, plus moving caseloads; and who
may move one referral.  Stated against the pure policy, role by role."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from referrals.auth import policy
from referrals.auth.principal import Principal, Role
from referrals.domain.codes import Side, Status, UnitKind


@dataclass(frozen=True)
class Scope:
    status: str
    sending_unit_id: str
    receiving_unit_id: str | None


REQUESTED = Scope(Status.REQUESTED, "ungdomsjouren", "norrmalm")


def who(role: Role, unit: str | None = "norrmalm") -> Principal:
    return Principal(issuer="https://idp.test", subject="s", roles=frozenset({role}), unit=unit)


@pytest.mark.parametrize("role", [Role.CASEWORKER, Role.UNIT_LEAD])
def test_caseworkers_and_unit_leads_are_the_receiving_unit(role: Role) -> None:
    staff = who(role)
    assert policy.works_for_receiving_unit(staff)
    assert policy.may_work_with_cases(staff)
    assert policy.side_of(staff, REQUESTED) is Side.RECEIVER
    assert policy.side_of(who(role, "sodermalm"), REQUESTED) is None
    assert policy.may_break_glass(who(role, "sodermalm"), REQUESTED, UnitKind.RECEIVER)
    assert not policy.may_break_glass(who(role, "sodermalm"), REQUESTED, UnitKind.REFERRER)
    assert not policy.works_for_receiving_unit(who(role, None))
    assert policy.may_be_assigned(role)


@pytest.mark.parametrize(
    "role", [Role.YOUTH_WORKER, Role.AUDITOR, Role.ADMIN, Role.PRIVACY_OFFICER, Role.ANALYST]
)
def test_no_other_role_is_the_receiving_unit(role: Role) -> None:
    other = who(role)
    assert not policy.works_for_receiving_unit(other)
    assert policy.side_of(other, Scope(Status.REQUESTED, "faltgruppen", "norrmalm")) is None
    assert not policy.may_be_assigned(role)
    assert not policy.may_reassign_caseload(other)
    assert not policy.may_assign(other, Side.RECEIVER, True)


def test_a_stored_role_that_is_no_role_is_not_assignable() -> None:
    assert not policy.may_be_assigned("superuser")
    assert policy.may_be_assigned("caseworker")


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.ADMIN, Role.PRIVACY_OFFICER, Role.ANALYST])
def test_roles_without_case_content_stay_without_it(role: Role) -> None:
    assert not policy.may_work_with_cases(who(role))


def test_a_caseworker_moves_only_what_is_theirs_or_no_ones() -> None:
    caseworker = who(Role.CASEWORKER)
    assert policy.may_assign(caseworker, Side.RECEIVER, held_by_caller_or_nobody=True)
    assert not policy.may_assign(caseworker, Side.RECEIVER, held_by_caller_or_nobody=False)
    assert not policy.may_assign(caseworker, Side.SENDER, held_by_caller_or_nobody=True)
    assert not policy.may_assign(caseworker, None, held_by_caller_or_nobody=True)
    assert not policy.may_reassign_caseload(caseworker)


def test_a_unit_lead_moves_any_referral_of_its_unit_and_whole_caseloads() -> None:
    lead = who(Role.UNIT_LEAD)
    assert policy.may_assign(lead, Side.RECEIVER, held_by_caller_or_nobody=False)
    assert not policy.may_assign(lead, Side.SENDER, held_by_caller_or_nobody=True)
    assert policy.may_reassign_caseload(lead)
    assert not policy.may_reassign_caseload(who(Role.UNIT_LEAD, None))
