"""Authorization as pure functions (README: Roles).  Default deny.

Services ask these questions and turn a "no" into 403 (the caller's role may never
do this) or 404 (this referral is outside the caller's scope: its existence is not
revealed).  Nothing here touches the database or the request.
"""

from __future__ import annotations

from typing import Protocol

from referrals.auth.principal import Principal, Role
from referrals.domain.codes import NoteVisibility, Side, Status, UnitKind


class ReferralScope(Protocol):
    """The plaintext, non-personal facts about a referral that decide access."""

    @property
    def status(self) -> str: ...
    @property
    def sending_unit_id(self) -> str: ...
    @property
    def receiving_unit_id(self) -> str | None: ...


# Staff of a receiving unit: a unit lead may do whatever a caseworker of the unit may.
RECEIVING_ROLES = frozenset({Role.CASEWORKER, Role.UNIT_LEAD})
CASE_ROLES = frozenset({Role.YOUTH_WORKER}) | RECEIVING_ROLES


def works_for_receiving_unit(principal: Principal) -> bool:
    """The one predicate behind every receiving-side rule (inbox, transitions, break the
    glass, notes, pages): caseworkers and unit leads of the caller's unit alike."""
    return bool(principal.roles & RECEIVING_ROLES) and principal.unit is not None


def may_work_with_cases(principal: Principal) -> bool:
    """Only the case roles ever see case content; auditors, admins, privacy officers and
    analysts never do through these doors."""
    return bool(principal.roles & CASE_ROLES) and principal.unit is not None


def may_open_referral(principal: Principal) -> bool:
    return principal.has_role(Role.YOUTH_WORKER) and principal.unit is not None


def may_manage_units(principal: Principal) -> bool:
    return principal.has_role(Role.ADMIN)


def may_manage_routing(principal: Principal) -> bool:
    """Routing rules and webhook deliveries are operator business."""
    return principal.has_role(Role.ADMIN)


def may_break_glass(
    principal: Principal, referral: ReferralScope, caller_unit_kind: str | None
) -> bool:
    """A caseworker of a registered receiving unit may open a submitted referral of
    another unit in an emergency.

    ``caller_unit_kind`` is the registered kind of the caller's unit (None: not
    registered): a token may name any unit, and only the unit directory says which
    units are social services.  A draft is never opened: it has not left its author."""
    return (
        works_for_receiving_unit(principal)
        and caller_unit_kind == UnitKind.RECEIVER
        and referral.status != Status.DRAFT
    )


def may_audit(principal: Principal) -> bool:
    """Auditors read the trail of who did what; never the case content itself."""
    return principal.has_role(Role.AUDITOR)


def may_erase(principal: Principal) -> bool:
    """Erasure is an operator's act on a referral it cannot read."""
    return principal.has_role(Role.ADMIN)


def may_place_legal_hold(principal: Principal) -> bool:
    """Auditors and privacy officers stop erasure for a review; they read no case content."""
    return principal.has_role(Role.PRIVACY_OFFICER) or principal.has_role(Role.AUDITOR)


def may_review_retention(principal: Principal) -> bool:
    """What is due for erasure and what is held: ids, statuses and dates, no case content.

    Admins too, for the operator's ``referrals retention report``; over the API the
    endpoint's scopes (``privacy``, ``audit:read``) keep admins' tokens out."""
    return may_place_legal_hold(principal) or principal.has_role(Role.ADMIN)


def may_request_subject_access(principal: Principal) -> bool:
    """The data-protection officer answers a person's request for their own data (GDPR
    Art. 15): the one way case content leaves the service other than to the two sides."""
    return principal.has_role(Role.PRIVACY_OFFICER)


def may_read_statistics(principal: Principal) -> bool:
    """Suppressed counts only: no case content and no referral ids."""
    return principal.has_role(Role.ANALYST)


def may_list_units(principal: Principal) -> bool:
    """The unit directory is not case content: every known role may read it."""
    return bool(principal.roles)


def side_of(principal: Principal, referral: ReferralScope) -> Side | None:
    """Which side of the referral the caller is on, or None: no access at all.

    The sending unit's youth workers own it from the draft on; the receiving unit's
    caseworkers see it only once it has been submitted to them.  A redirect changes
    ``receiving_unit_id``, so the previous unit loses access with no extra rule.
    """
    if principal.unit is None:
        return None
    if principal.has_role(Role.YOUTH_WORKER) and referral.sending_unit_id == principal.unit:
        return Side.SENDER
    if (
        works_for_receiving_unit(principal)
        and referral.receiving_unit_id == principal.unit
        and referral.status != Status.DRAFT
    ):
        return Side.RECEIVER
    return None


def may_read_note(
    reader_side: Side,
    reader_unit: str | None,
    author_side: Side,
    author_unit: str | None,
    visibility: NoteVisibility,
) -> bool:
    """Shared notes are for both sides; an internal note stays with its author's unit.

    So the sender never sees the receiver's internal notes, and vice versa; and after a
    redirect the new receiving unit does not read the previous unit's internal notes."""
    if visibility is NoteVisibility.SHARED:
        return True
    return reader_side is author_side and reader_unit is not None and reader_unit == author_unit


def may_edit_or_delete(side: Side | None) -> bool:
    """Drafts belong to the sending unit; whether the status allows it is the service's call."""
    return side is Side.SENDER


def may_see_assignee(side: Side | None) -> bool:
    """The assignee is receiving-unit staff: the sender learns status and outcome, not who."""
    return side is Side.RECEIVER


def may_assign(principal: Principal, side: Side | None, held_by_caller_or_nobody: bool) -> bool:
    """Take, hand over or release a referral of the caller's unit.

    A caseworker moves only what is theirs or no one's (taking a colleague's case is the
    unit lead's call); a unit lead moves any referral of the unit."""
    if side is not Side.RECEIVER or not works_for_receiving_unit(principal):
        return False
    return principal.has_role(Role.UNIT_LEAD) or held_by_caller_or_nobody


def may_reassign_caseload(principal: Principal) -> bool:
    """Moving every open referral of one staff member to another is the unit lead's."""
    return principal.has_role(Role.UNIT_LEAD) and principal.unit is not None


def may_be_assigned(role: str) -> bool:
    """Who a referral may be assigned to: staff of the receiving unit (``role`` as stored,
    so a value that is no role at all is simply not one of them)."""
    return role in RECEIVING_ROLES
