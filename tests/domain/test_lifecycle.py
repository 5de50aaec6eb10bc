"""The state machine against an independent, explicit table of README: Referral states."""

import itertools

import pytest

from referrals.domain.codes import (
    FINAL_STATUSES,
    OPEN_STATUSES,
    Action,
    OutcomeCode,
    ReasonCode,
    Side,
    Status,
)
from referrals.domain.errors import (
    ActionNotAllowed,
    DomainError,
    InvalidTransition,
    MissingRequirement,
)
from referrals.domain.lifecycle import TRANSITIONS, Transition, check_inputs, is_final, plan

S, A = Status, Action

# Columns of WHO, in this order.
COLUMNS = (
    S.DRAFT,
    S.REQUESTED,
    S.ACCEPTED,
    S.IN_PROGRESS,
    S.ON_HOLD,
    S.COMPLETED,
    S.FAILED,
    S.REJECTED,
    S.CANCELLED,
    S.ENTERED_IN_ERROR,
)
# Who may take each action from each status: s sender, r receiver, b both, . nobody.
#                      dra req acc inp hld cmp fai rej can err
WHO = {
    A.SUBMIT: "        s   .   .   .   .   .   .   .   .   .",
    A.ACCEPT: "        .   r   .   .   .   .   .   .   .   .",
    A.DECLINE: "       .   r   .   .   .   .   .   .   .   .",
    A.REDIRECT: "      .   r   .   .   .   .   .   .   .   .",
    A.CANCEL: "        .   s   r   r   r   .   .   .   .   .",
    A.START: "         .   .   r   .   .   .   .   .   .   .",
    A.HOLD: "          .   .   .   r   .   .   .   .   .   .",
    A.RESUME: "        .   .   .   .   r   .   .   .   .   .",
    A.COMPLETE: "      .   .   r   r   r   .   .   .   .   .",
    A.FAIL: "          .   .   r   r   r   .   .   .   .   .",
    A.MARK_ERROR: "    .   b   b   b   b   .   .   .   .   .",
}
CELL_SIDES = {
    ".": frozenset[Side](),
    "s": frozenset({Side.SENDER}),
    "r": frozenset({Side.RECEIVER}),
    "b": frozenset({Side.SENDER, Side.RECEIVER}),
}
# Resulting status per action (None: unchanged) and which inputs it needs.
TARGET = {
    A.SUBMIT: S.REQUESTED,
    A.ACCEPT: S.ACCEPTED,
    A.DECLINE: S.REJECTED,
    A.REDIRECT: None,
    A.CANCEL: S.CANCELLED,
    A.START: S.IN_PROGRESS,
    A.HOLD: S.ON_HOLD,
    A.RESUME: S.IN_PROGRESS,
    A.COMPLETE: S.COMPLETED,
    A.FAIL: S.FAILED,
    A.MARK_ERROR: S.ENTERED_IN_ERROR,
}
NEEDS = {
    A.DECLINE: {"reason"},
    A.REDIRECT: {"reason", "unit"},
    A.CANCEL: {"reason"},
    A.HOLD: {"reason"},
    A.COMPLETE: {"outcome"},
    A.FAIL: {"reason"},
    A.MARK_ERROR: {"reason"},
}


def who(action: Action, status: Status) -> frozenset[Side]:
    cells = WHO[action].split()
    assert len(cells) == len(COLUMNS)
    return CELL_SIDES[cells[COLUMNS.index(status)]]


def expected_transitions() -> set[Transition]:
    """Rebuild TRANSITIONS from the table: one row per (action, sides) group of statuses."""
    grouped: dict[tuple[Action, frozenset[Side]], set[Status]] = {}
    for action, status in itertools.product(Action, Status):
        sides = who(action, status)
        if sides:
            grouped.setdefault((action, sides), set()).add(status)
    return {
        Transition(
            action=action,
            sources=frozenset(sources),
            target=TARGET[action],
            sides=sides,
            needs_reason="reason" in NEEDS.get(action, set()),
            needs_outcome="outcome" in NEEDS.get(action, set()),
            needs_unit="unit" in NEEDS.get(action, set()),
        )
        for (action, sides), sources in grouped.items()
    }


def test_table_covers_every_action_and_status() -> None:
    assert set(WHO) == set(Action) == set(TARGET)
    assert set(COLUMNS) == set(Status)


def test_transitions_match_the_table_exactly() -> None:
    assert len(TRANSITIONS) == 12
    assert set(TRANSITIONS) == expected_transitions()


def test_no_two_transitions_overlap() -> None:
    # plan() returns the first match, so an overlap would silently hide a row.
    for one, other in itertools.combinations(TRANSITIONS, 2):
        if one.action is other.action:
            assert not (one.sources & other.sources and one.sides & other.sides)


@pytest.mark.parametrize(
    ("action", "status", "side"),
    list(itertools.product(Action, Status, Side)),
    ids=lambda value: str(value),
)
def test_plan_every_combination(action: Action, status: Status, side: Side) -> None:
    if side in who(action, status):
        transition = plan(action, status, side)
        assert transition.action is action
        assert status in transition.sources
        assert side in transition.sides
        assert transition.target == TARGET[action]
        return
    never_this_side = all(side not in who(action, s) for s in Status)
    if never_this_side or who(action, status):
        with pytest.raises(ActionNotAllowed) as caught:
            plan(action, status, side)
        assert caught.value.code == "action_not_allowed"
    else:
        with pytest.raises(InvalidTransition) as caught_invalid:
            plan(action, status, side)
        assert caught_invalid.value.code == "invalid_transition"


@pytest.mark.parametrize(
    ("action", "status", "side", "error"),
    [
        (A.ACCEPT, S.REQUESTED, Side.SENDER, ActionNotAllowed),  # never the sender's action
        (A.ACCEPT, S.COMPLETED, Side.SENDER, ActionNotAllowed),  # side checked before status
        (A.SUBMIT, S.DRAFT, Side.RECEIVER, ActionNotAllowed),
        (A.ACCEPT, S.ACCEPTED, Side.RECEIVER, InvalidTransition),
        (A.CANCEL, S.ACCEPTED, Side.SENDER, ActionNotAllowed),  # after acceptance: receiver
        (A.CANCEL, S.REQUESTED, Side.RECEIVER, ActionNotAllowed),  # before it: sender
        (A.CANCEL, S.DRAFT, Side.SENDER, InvalidTransition),  # drafts are deleted, not cancelled
        (A.MARK_ERROR, S.DRAFT, Side.SENDER, InvalidTransition),
        (A.MARK_ERROR, S.ENTERED_IN_ERROR, Side.RECEIVER, InvalidTransition),
        (A.RESUME, S.IN_PROGRESS, Side.RECEIVER, InvalidTransition),
    ],
)
def test_plan_spot_checks(
    action: Action, status: Status, side: Side, error: type[DomainError]
) -> None:
    with pytest.raises(error):
        plan(action, status, side)


def test_invalid_transition_message_names_action_and_status() -> None:
    with pytest.raises(InvalidTransition) as caught:
        plan(A.ACCEPT, S.ACCEPTED, Side.RECEIVER)
    assert caught.value.message == "cannot accept a referral that is accepted"
    assert caught.value.field is None


def test_cancel_depends_on_side_and_status() -> None:
    assert plan(A.CANCEL, S.REQUESTED, Side.SENDER).sides == {Side.SENDER}
    assert plan(A.CANCEL, S.ON_HOLD, Side.RECEIVER).sides == {Side.RECEIVER}


def test_redirect_keeps_status() -> None:
    assert plan(A.REDIRECT, S.REQUESTED, Side.RECEIVER).target is None


@pytest.mark.parametrize("transition", TRANSITIONS, ids=lambda t: f"{t.action}-{min(t.sources)}")
def test_check_inputs_accepts_complete_input(transition: Transition) -> None:
    check_inputs(
        transition,
        reason_code=ReasonCode.OTHER,
        outcome_code=OutcomeCode.SUPPORT_STARTED,
        unit="sodermalm",
    )


@pytest.mark.parametrize("transition", TRANSITIONS, ids=lambda t: f"{t.action}-{min(t.sources)}")
def test_check_inputs_names_the_missing_field(transition: Transition) -> None:
    needs = NEEDS.get(transition.action, set())
    full = {
        "reason_code": ReasonCode.WRONG_DISTRICT,
        "outcome_code": OutcomeCode.NO_ACTION_NEEDED,
        "unit": "sodermalm",
    }
    for need, field in (("reason", "reason_code"), ("outcome", "outcome_code"), ("unit", "unit")):
        if need not in needs:
            continue
        with pytest.raises(MissingRequirement) as caught:
            check_inputs(transition, **{**full, field: None})  # type: ignore[arg-type]
        assert caught.value.field == field
        assert caught.value.code == "missing_requirement"
    if not needs:
        check_inputs(transition, reason_code=None, outcome_code=None, unit=None)


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_unit_counts_as_missing(blank: str) -> None:
    redirect = plan(A.REDIRECT, S.REQUESTED, Side.RECEIVER)
    with pytest.raises(MissingRequirement) as caught:
        check_inputs(redirect, reason_code=ReasonCode.WRONG_DISTRICT, outcome_code=None, unit=blank)
    assert caught.value.field == "unit"


def test_status_groups() -> None:
    assert {S.COMPLETED, S.FAILED, S.REJECTED, S.CANCELLED, S.ENTERED_IN_ERROR} == FINAL_STATUSES
    assert {S.REQUESTED, S.ACCEPTED, S.IN_PROGRESS, S.ON_HOLD} == OPEN_STATUSES
    assert FINAL_STATUSES | OPEN_STATUSES | {S.DRAFT} == set(Status)


@pytest.mark.parametrize("status", Status)
def test_is_final_means_no_way_out(status: Status) -> None:
    leaves = any(status in t.sources for t in TRANSITIONS)
    assert is_final(status) == (status in FINAL_STATUSES)
    assert is_final(status) == (not leaves and status is not S.DRAFT)


def test_action_values_are_url_segments() -> None:
    assert [a.value for a in Action] == [
        "submit",
        "accept",
        "decline",
        "redirect",
        "cancel",
        "start",
        "hold",
        "resume",
        "complete",
        "fail",
        "mark-error",
    ]
