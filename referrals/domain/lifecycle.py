"""The referral state machine (README: Referral states), held as data to read, test, list.

Services ask :func:`plan` whether an action is possible, then :func:`check_inputs` whether the
request carries what that action needs. Deleting a draft is not a transition: the referral
simply ceases to exist, so it is handled by the service, not here.
"""

from dataclasses import dataclass

from referrals.domain.codes import FINAL_STATUSES, Action, OutcomeCode, ReasonCode, Side, Status
from referrals.domain.errors import ActionNotAllowed, InvalidTransition, MissingRequirement


@dataclass(frozen=True)
class Transition:
    """One row of the state machine: ``action`` moves a referral from ``sources`` to ``target``."""

    action: Action
    sources: frozenset[Status]
    target: Status | None  # None: status unchanged (redirect moves the unit, not the status)
    sides: frozenset[Side]
    needs_reason: bool
    needs_outcome: bool
    needs_unit: bool


_SENDER = frozenset({Side.SENDER})
_RECEIVER = frozenset({Side.RECEIVER})
_EITHER = frozenset({Side.SENDER, Side.RECEIVER})
# Once accepted, the case work belongs to the receiving unit.
_ACCEPTED_OR_LATER = frozenset({Status.ACCEPTED, Status.IN_PROGRESS, Status.ON_HOLD})


def _t(
    action: Action,
    sources: frozenset[Status],
    target: Status | None,
    sides: frozenset[Side],
    *,
    reason: bool = False,
    outcome: bool = False,
    unit: bool = False,
) -> Transition:
    return Transition(action, sources, target, sides, reason, outcome, unit)


TRANSITIONS: tuple[Transition, ...] = (
    _t(Action.SUBMIT, frozenset({Status.DRAFT}), Status.REQUESTED, _SENDER),
    _t(Action.ACCEPT, frozenset({Status.REQUESTED}), Status.ACCEPTED, _RECEIVER),
    _t(Action.DECLINE, frozenset({Status.REQUESTED}), Status.REJECTED, _RECEIVER, reason=True),
    _t(Action.REDIRECT, frozenset({Status.REQUESTED}), None, _RECEIVER, reason=True, unit=True),
    # Before acceptance only the sender may withdraw; the receiver declines instead.
    _t(Action.CANCEL, frozenset({Status.REQUESTED}), Status.CANCELLED, _SENDER, reason=True),
    _t(Action.START, frozenset({Status.ACCEPTED}), Status.IN_PROGRESS, _RECEIVER),
    _t(Action.HOLD, frozenset({Status.IN_PROGRESS}), Status.ON_HOLD, _RECEIVER, reason=True),
    _t(Action.RESUME, frozenset({Status.ON_HOLD}), Status.IN_PROGRESS, _RECEIVER),
    _t(Action.COMPLETE, _ACCEPTED_OR_LATER, Status.COMPLETED, _RECEIVER, outcome=True),
    _t(Action.FAIL, _ACCEPTED_OR_LATER, Status.FAILED, _RECEIVER, reason=True),
    _t(Action.CANCEL, _ACCEPTED_OR_LATER, Status.CANCELLED, _RECEIVER, reason=True),
    _t(
        Action.MARK_ERROR,
        frozenset({Status.REQUESTED}) | _ACCEPTED_OR_LATER,
        Status.ENTERED_IN_ERROR,
        _EITHER,
        reason=True,
    ),
)


def plan(action: Action, status: Status, side: Side) -> Transition:
    """Return the transition ``side`` takes by doing ``action`` on a referral in ``status``.

    Raises ActionNotAllowed when this side may never do the action, or may not do it from this
    status although the other side may; InvalidTransition when the action does not leave this
    status at all. Checking the side first means a caller learns nothing about the status of a
    referral from an action that is never theirs to take.
    """
    candidates = [t for t in TRANSITIONS if t.action is action]
    if not any(side in t.sides for t in candidates):
        raise ActionNotAllowed(f"the {side.value} may not {action.value} a referral")
    from_status = [t for t in candidates if status in t.sources]
    if not from_status:
        raise InvalidTransition(f"cannot {action.value} a referral that is {status.value}")
    for transition in from_status:
        if side in transition.sides:
            return transition
    raise ActionNotAllowed(
        f"the {side.value} may not {action.value} a referral that is {status.value}"
    )


def check_inputs(
    transition: Transition,
    *,
    reason_code: ReasonCode | None,
    outcome_code: OutcomeCode | None,
    unit: str | None,
) -> None:
    """Raise MissingRequirement for the first input ``transition`` needs but did not get."""
    verb = transition.action.value
    if transition.needs_reason and reason_code is None:
        raise MissingRequirement(f"a reason code is required to {verb}", field="reason_code")
    if transition.needs_outcome and outcome_code is None:
        raise MissingRequirement(f"an outcome code is required to {verb}", field="outcome_code")
    # A blank unit id would route nowhere, so it counts as missing.
    if transition.needs_unit and (unit is None or not unit.strip()):
        raise MissingRequirement(f"a unit is required to {verb}", field="unit")


def is_final(status: Status) -> bool:
    """True when no action can leave ``status``."""
    return status in FINAL_STATUSES
