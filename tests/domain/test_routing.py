"""The routing engine alone (referrals/domain/routing.py): no database, no HTTP.

``decide`` tries rules in ascending position and the first whose conditions all hold
wins; ``Match.misses`` says why a rule does not hold, in coarse facts only;
``Match.covers`` finds rules an earlier rule makes unreachable; ``validate`` refuses
rule sets that are empty, ambiguous, partly unreachable or without a final catch-all.
"""

from __future__ import annotations

import re
from typing import Any, cast

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from referrals.domain.codes import Category, Priority
from referrals.domain.routing import (
    MAX_AGE,
    Decision,
    Facts,
    InvalidRuleSet,
    Match,
    Rule,
    RuleSet,
    decide,
    validate,
)

RECEIVERS = ("norrmalm", "sodermalm", "kungsholmen", "intake")
ALL_PRIORITIES = frozenset(p.value for p in Priority)
ALL_CATEGORIES = frozenset(c.value for c in Category)


def match(**conditions: Any) -> Match:
    return Match.from_json(conditions)


def rule(position: int, unit: str, **conditions: Any) -> Rule:
    return Rule(id=f"r{position}", position=position, unit=unit, match=match(**conditions))


def facts(
    district: str | None = None,
    age: int | None = None,
    categories: tuple[str, ...] = ("drugs",),
    priority: str = "normal",
) -> Facts:
    return Facts(district, age, frozenset(categories), priority)


# The rule set of the API tests, in the engine's terms.
RULES = (
    rule(10, "kungsholmen", priorities=["acute"], categories=["violence"], min_age=0, max_age=17),
    rule(20, "norrmalm", districts=["norrmalm", "ostermalm"]),
    rule(30, "sodermalm", districts=["sodermalm"], min_age=12, max_age=17),
    rule(40, "sodermalm", categories=["sexual_exploitation"]),
    rule(50, "kungsholmen", priorities=["urgent"], districts=["kungsholmen"]),
    rule(1000, "intake"),
)
RULESET = RuleSet(7, RULES)


def test_the_rule_set_of_these_tests_is_valid() -> None:
    validate(RULES, RECEIVERS)


# --- decide ------------------------------------------------------------------------------

DECISIONS = [
    pytest.param(facts("norrmalm", 15), 20, id="district"),
    pytest.param(facts("ostermalm", 15), 20, id="second-district-of-a-rule"),
    pytest.param(facts("vasastan", 15), 1000, id="unknown-district"),
    pytest.param(facts(None, 15), 1000, id="no-district"),
    pytest.param(facts("sodermalm", 11), 1000, id="below-age-band"),
    pytest.param(facts("sodermalm", 12), 30, id="lowest-age-of-band"),
    pytest.param(facts("sodermalm", 17), 30, id="highest-age-of-band"),
    pytest.param(facts("sodermalm", 18), 1000, id="above-age-band"),
    pytest.param(facts("sodermalm", None), 1000, id="age-unknown"),
    pytest.param(facts("sodermalm", None, ("sexual_exploitation",)), 40, id="age-unknown-category"),
    pytest.param(facts(None, 0, ("violence",), "acute"), 10, id="age-0"),
    pytest.param(facts("norrmalm", 17, ("violence",), "acute"), 10, id="first-rule-wins"),
    pytest.param(facts("norrmalm", 18, ("violence",), "acute"), 20, id="age-18-falls-through"),
    pytest.param(facts("norrmalm", None, ("violence",), "acute"), 20, id="age-unknown-falls"),
    pytest.param(facts(None, 5, ("violence",), "urgent"), 1000, id="priority-mismatch"),
    pytest.param(facts(None, 5, ("drugs", "violence"), "acute"), 10, id="category-overlap"),
    pytest.param(facts(None, 5, (), "acute"), 1000, id="no-categories"),
    pytest.param(facts("kungsholmen", 40, priority="urgent"), 50, id="two-conditions"),
    pytest.param(facts("kungsholmen", 40, priority="acute"), 1000, id="one-of-two-conditions"),
    pytest.param(
        facts("kungsholmen", 40, ("sexual_exploitation",), "urgent"), 40, id="earlier-rule-wins"
    ),
]


@pytest.mark.parametrize(("given_facts", "position"), DECISIONS)
def test_decide(given_facts: Facts, position: int) -> None:
    decision = decide(RULESET, given_facts)
    chosen = next(r for r in RULES if r.position == position)
    assert decision.unit == chosen.unit
    assert decision.rule_id == chosen.id
    assert decision.ruleset_version == 7
    tried = [r for r in RULES if r.position <= position]
    assert [e["rule_id"] for e in decision.explanation] == [r.id for r in tried]
    assert [e["position"] for e in decision.explanation] == [r.position for r in tried]
    assert [e["unit"] for e in decision.explanation] == [r.unit for r in tried]
    assert [e["matched"] for e in decision.explanation] == [False] * (len(tried) - 1) + [True]
    for entry, tried_rule in zip(decision.explanation, tried, strict=True):
        assert entry["reasons"] == tried_rule.match.misses(given_facts)
    assert all(e["reasons"] for e in decision.explanation[:-1])


def test_a_decision_explains_each_rule_tried() -> None:
    decision = decide(RULESET, facts("vasastan", 15, ("drugs",), "normal"))
    assert decision == Decision(
        unit="intake",
        rule_id="r1000",
        ruleset_version=7,
        explanation=[
            {
                "rule_id": "r10",
                "position": 10,
                "unit": "kungsholmen",
                "matched": False,
                "reasons": [
                    "no category is one of violence",
                    "priority normal is not one of acute",
                ],
            },
            {
                "rule_id": "r20",
                "position": 20,
                "unit": "norrmalm",
                "matched": False,
                "reasons": ["district vasastan is not one of norrmalm, ostermalm"],
            },
            {
                "rule_id": "r30",
                "position": 30,
                "unit": "sodermalm",
                "matched": False,
                "reasons": ["district vasastan is not one of sodermalm"],
            },
            {
                "rule_id": "r40",
                "position": 40,
                "unit": "sodermalm",
                "matched": False,
                "reasons": ["no category is one of sexual_exploitation"],
            },
            {
                "rule_id": "r50",
                "position": 50,
                "unit": "kungsholmen",
                "matched": False,
                "reasons": [
                    "district vasastan is not one of kungsholmen",
                    "priority normal is not one of urgent",
                ],
            },
            {
                "rule_id": "r1000",
                "position": 1000,
                "unit": "intake",
                "matched": True,
                "reasons": [],
            },
        ],
    )


def test_decide_goes_by_position_not_by_the_order_given() -> None:
    shuffled = RuleSet(3, (RULES[5], RULES[2], RULES[0], RULES[4], RULES[1], RULES[3]))
    assert [r.position for r in shuffled.rules] == [10, 20, 30, 40, 50, 1000]
    assert shuffled.rules == RULESET.rules
    for param in DECISIONS:
        given_facts = cast(Facts, param.values[0])
        assert decide(shuffled, given_facts).rule_id == decide(RULESET, given_facts).rule_id
    # Even the catch-all first in the tuple is tried last.
    first = RuleSet(1, (rule(1000, "intake"), rule(5, "norrmalm", districts=["norrmalm"])))
    assert decide(first, facts("norrmalm")).unit == "norrmalm"


def test_find_a_rule_by_id() -> None:
    assert RULESET.find("r30") == RULES[2]
    assert RULESET.find("r31") is None


def test_an_unvalidated_set_without_a_catch_all_routes_nothing_silently() -> None:
    partial = RuleSet(1, (rule(10, "norrmalm", districts=["norrmalm"]),))
    assert decide(partial, facts("norrmalm")).unit == "norrmalm"
    with pytest.raises(InvalidRuleSet):
        decide(partial, facts("sodermalm"))
    with pytest.raises(InvalidRuleSet):
        decide(RuleSet(1, ()), facts("norrmalm"))


# --- Match.misses ----------------------------------------------------------------------------

MISSES = [
    pytest.param({}, facts(), [], id="catch-all"),
    pytest.param({"districts": ["norrmalm"]}, facts("norrmalm"), [], id="district-hit"),
    pytest.param(
        {"districts": ["norrmalm"]}, facts(None), ["the referral names no district"], id="none"
    ),
    pytest.param(
        {"districts": ["sodermalm", "norrmalm"]},
        facts("vasastan"),
        ["district vasastan is not one of norrmalm, sodermalm"],
        id="district-miss-sorted",
    ),
    pytest.param({"min_age": 12}, facts(age=12), [], id="min-age-inclusive"),
    pytest.param({"min_age": 12}, facts(age=11), ["age 11 is below 12"], id="below"),
    pytest.param({"max_age": 17}, facts(age=17), [], id="max-age-inclusive"),
    pytest.param({"max_age": 17}, facts(age=18), ["age 18 is above 17"], id="above"),
    pytest.param({"min_age": 0}, facts(age=0), [], id="age-0"),
    pytest.param(
        {"min_age": 0}, facts(age=None), ["the subject's age is unknown"], id="unknown-min"
    ),
    pytest.param(
        {"max_age": 17}, facts(age=None), ["the subject's age is unknown"], id="unknown-max"
    ),
    pytest.param(
        {"min_age": 12, "max_age": 17}, facts(age=3), ["age 3 is below 12"], id="band-below"
    ),
    pytest.param(
        {"categories": ["violence", "drugs"]}, facts(categories=("drugs", "other")), [], id="ovl"
    ),
    pytest.param(
        {"categories": ["violence", "drugs"]},
        facts(categories=("alcohol",)),
        ["no category is one of drugs, violence"],
        id="no-overlap",
    ),
    pytest.param(
        {"categories": ["violence"]},
        facts(categories=()),
        ["no category is one of violence"],
        id="no-categories",
    ),
    pytest.param({"priorities": ["acute", "urgent"]}, facts(priority="urgent"), [], id="prio"),
    pytest.param(
        {"priorities": ["acute"]},
        facts(priority="normal"),
        ["priority normal is not one of acute"],
        id="priority-miss",
    ),
    pytest.param(
        {
            "districts": ["norrmalm"],
            "min_age": 12,
            "max_age": 17,
            "categories": ["violence"],
            "priorities": ["acute"],
        },
        facts("sodermalm", 18, ("drugs",), "normal"),
        [
            "district sodermalm is not one of norrmalm",
            "age 18 is above 17",
            "no category is one of violence",
            "priority normal is not one of acute",
        ],
        id="every-condition-misses",
    ),
]


@pytest.mark.parametrize(("conditions", "given_facts", "reasons"), MISSES)
def test_misses(conditions: dict[str, Any], given_facts: Facts, reasons: list[str]) -> None:
    assert match(**conditions).misses(given_facts) == reasons


# Every message misses() may give, with what its parts must be.
TEMPLATES = [
    re.compile(r"the referral names no district"),
    re.compile(r"district (?P<district>\S+) is not one of (?P<districts>.+)"),
    re.compile(r"the subject's age is unknown"),
    re.compile(r"age (?P<age>\d+) is below (?P<min_age>\d+)"),
    re.compile(r"age (?P<age>\d+) is above (?P<max_age>\d+)"),
    re.compile(r"no category is one of (?P<categories>.+)"),
    re.compile(r"priority (?P<priority>\S+) is not one of (?P<priorities>.+)"),
]

DISTRICTS = ["norrmalm", "sodermalm", "kungsholmen", "ostermalm", "bromma", "vasastan"]
CATEGORY_CODES = sorted(ALL_CATEGORIES)
PRIORITY_CODES = sorted(ALL_PRIORITIES)


def code_lists(values: list[str]) -> st.SearchStrategy[list[str] | None]:
    return st.none() | st.lists(st.sampled_from(values), min_size=1, max_size=4, unique=True)


@st.composite
def matches(draw: st.DrawFn, *, max_age: int = 25) -> Match:
    low = draw(st.none() | st.integers(0, max_age))
    high = draw(st.none() | st.integers(0, max_age))
    if low is not None and high is not None and low > high:
        low, high = high, low
    conditions: dict[str, Any] = {
        "districts": draw(code_lists(DISTRICTS)),
        "categories": draw(code_lists(CATEGORY_CODES)),
        "priorities": draw(code_lists(PRIORITY_CODES)),
        "min_age": low,
        "max_age": high,
    }
    return match(**{k: v for k, v in conditions.items() if v is not None})


def fact_sets(*, max_age: int = 25) -> st.SearchStrategy[Facts]:
    return st.builds(
        Facts,
        district=st.none() | st.sampled_from(DISTRICTS),
        age=st.none() | st.integers(0, max_age),
        categories=st.frozensets(st.sampled_from(CATEGORY_CODES), max_size=4),
        priority=st.sampled_from(PRIORITY_CODES),
    )


@settings(max_examples=150, deadline=None)
@given(conditions=matches(), given_facts=fact_sets())
def test_misses_speaks_only_of_the_coarse_facts(conditions: Match, given_facts: Facts) -> None:
    reasons = conditions.misses(given_facts)
    assert len(reasons) == len(set(reasons)) <= 4
    for reason in reasons:
        found = [m for t in TEMPLATES if (m := t.fullmatch(reason))]
        assert len(found) == 1, reason
        parts = found[0].groupdict()
        # Every variable part is a routing fact of the referral or a code of the rule.
        expected = {
            "district": given_facts.district,
            "age": str(given_facts.age),
            "priority": given_facts.priority,
            "min_age": str(conditions.min_age),
            "max_age": str(conditions.max_age),
        }
        for name, value in parts.items():
            if name in ("districts", "categories", "priorities"):
                codes = getattr(conditions, name)
                assert codes is not None
                assert value == ", ".join(sorted(codes))
            else:
                assert value == expected[name], (name, reason)
    # A reason is given exactly when the rule does not hold.
    holds = (
        (conditions.districts is None or given_facts.district in conditions.districts)
        and (
            (conditions.min_age is None and conditions.max_age is None)
            or (
                given_facts.age is not None
                and (conditions.min_age or 0) <= given_facts.age
                and (conditions.max_age is None or given_facts.age <= conditions.max_age)
            )
        )
        and (conditions.categories is None or bool(conditions.categories & given_facts.categories))
        and (conditions.priorities is None or given_facts.priority in conditions.priorities)
    )
    assert (reasons == []) == holds


# --- Match.covers -----------------------------------------------------------------------------

COVERS = [
    pytest.param({}, {}, True, id="catch-all-covers-catch-all"),
    pytest.param({}, {"districts": ["norrmalm"], "min_age": 3}, True, id="catch-all-covers-all"),
    pytest.param({"districts": ["norrmalm"]}, {}, False, id="nothing-covers-the-catch-all"),
    pytest.param(
        {"districts": ["norrmalm", "ostermalm"]}, {"districts": ["ostermalm"]}, True, id="subset"
    ),
    pytest.param(
        {"districts": ["norrmalm"]}, {"districts": ["norrmalm", "ostermalm"]}, False, id="superset"
    ),
    pytest.param(
        {"districts": ["norrmalm"]},
        {"districts": ["norrmalm"], "priorities": ["acute"]},
        True,
        id="narrower-by-another-condition",
    ),
    pytest.param({"min_age": 12, "max_age": 17}, {"min_age": 13, "max_age": 17}, True, id="band"),
    pytest.param({"min_age": 12, "max_age": 17}, {"min_age": 11, "max_age": 17}, False, id="low"),
    pytest.param({"min_age": 12, "max_age": 17}, {"min_age": 12, "max_age": 18}, False, id="high"),
    pytest.param({"min_age": 12, "max_age": 17}, {"min_age": 12}, False, id="open-high"),
    pytest.param({"min_age": 12}, {"min_age": 40}, True, id="open-ended-band"),
    pytest.param({"max_age": 17}, {"min_age": 0, "max_age": 10}, True, id="zero-is-zero"),
    pytest.param({"max_age": 17}, {"max_age": 10}, True, id="both-from-zero"),
    pytest.param({"min_age": 0}, {}, False, id="age-known-does-not-cover-age-unknown"),
    pytest.param({"min_age": 0}, {"districts": ["norrmalm"]}, False, id="age-unknown-again"),
    pytest.param({}, {"min_age": 0}, True, id="no-age-condition-covers-any"),
    pytest.param(
        {"categories": ["violence", "drugs"]}, {"categories": ["drugs"]}, True, id="categories"
    ),
    pytest.param(
        {"categories": ["violence"]},
        {"categories": ["drugs", "violence"]},
        False,
        id="overlap-needs-all-of-theirs",
    ),
    pytest.param({"priorities": ["acute"]}, {"priorities": ["urgent"]}, False, id="disjoint"),
    pytest.param(
        {"districts": ["norrmalm"], "categories": ["violence"]},
        {"districts": ["norrmalm"]},
        False,
        id="their-missing-condition",
    ),
]


@pytest.mark.parametrize(("mine", "theirs", "expected"), COVERS)
def test_covers(mine: dict[str, Any], theirs: dict[str, Any], expected: bool) -> None:
    assert match(**mine).covers(match(**theirs)) is expected


def universe(*conditions: Match) -> list[Facts]:
    """Enough facts to tell any two of these matches apart: every district they name plus
    one they do not and none; every age boundary and no age; no category or any single
    one (a referral matching one rule and missing another by its categories can always
    be cut down to one category or none); every priority."""
    districts: set[str | None] = {None, "elsewhere"}
    categories: set[str] = {"other"}
    ages: set[int | None] = {None, 0, MAX_AGE}
    for c in conditions:
        districts |= set(c.districts or ())
        categories |= set(c.categories or ())
        for bound in (c.min_age, c.max_age):
            if bound is not None:
                ages |= {b for b in (bound - 1, bound, bound + 1) if 0 <= b <= MAX_AGE}
    category_sets = [frozenset(), *(frozenset({c}) for c in categories)]
    return [
        Facts(d, a, c, p)
        for d in districts
        for a in ages
        for c in category_sets
        for p in PRIORITY_CODES
    ]


def semantically_covers(mine: Match, theirs: Match) -> bool:
    return all(not mine.misses(f) for f in universe(mine, theirs) if not theirs.misses(f))


@settings(max_examples=150, deadline=None)
@given(mine=matches(), theirs=matches())
def test_covers_never_claims_too_much(mine: Match, theirs: Match) -> None:
    """Soundness: when covers() says so, no referral (aged up to MAX_AGE) matching
    ``theirs`` escapes ``mine`` — a rule refused as unreachable really is."""
    if mine.covers(theirs):
        assert semantically_covers(mine, theirs)


@settings(max_examples=150, deadline=None)
@given(mine=matches(), theirs=matches())
def test_covers_finds_what_it_should(mine: Match, theirs: Match) -> None:
    """Completeness, apart from the case test_every_priority_listed_is_no_condition
    shows: a rule made unreachable by an earlier one is recognised."""
    assume(mine.priorities != ALL_PRIORITIES)
    if semantically_covers(mine, theirs):
        assert mine.covers(theirs)


def test_every_priority_listed_is_no_condition() -> None:
    """PRODUCT BUG: every referral has one of the three priorities, so a rule listing all
    of them matches whatever the rest of it matches, and the catch-all after it can never
    be reached.  covers() treats the full list like a real condition, so validate()
    accepts a rule set whose later rules are dead."""
    every_priority = match(priorities=sorted(ALL_PRIORITIES))
    assert semantically_covers(every_priority, Match())
    assert every_priority.covers(Match())
    with pytest.raises(InvalidRuleSet) as refused:
        validate(
            [rule(10, "norrmalm", priorities=sorted(ALL_PRIORITIES)), rule(1000, "intake")],
            RECEIVERS,
        )
    assert refused.value.field == "position"


# --- validate ------------------------------------------------------------------------------

CATCH_ALL = rule(1000, "intake")


def refusal(rules: list[Rule]) -> InvalidRuleSet:
    with pytest.raises(InvalidRuleSet) as caught:
        validate(rules, RECEIVERS)
    assert caught.value.code == "invalid_rule_set"
    assert caught.value.message
    return caught.value


INVALID = [
    pytest.param([], "match", "a rule set needs at least a catch-all rule", id="empty"),
    pytest.param(
        [rule(10, "norrmalm", districts=["norrmalm"])],
        "match",
        "the last rule must be a catch-all (empty match) so every referral is routed",
        id="no-catch-all",
    ),
    pytest.param(
        [rule(10, "norrmalm", districts=["norrmalm"]), rule(10, "intake")],
        "position",
        "position 10 is taken by another rule",
        id="duplicate-position",
    ),
    pytest.param(
        [rule(10, "nowhere", districts=["norrmalm"]), CATCH_ALL],
        "unit",
        "the rule at position 10 names 'nowhere', which is not a receiving unit",
        id="unknown-unit",
    ),
    pytest.param(
        [rule(10, "ungdomsjouren", districts=["norrmalm"]), CATCH_ALL],
        "unit",
        "the rule at position 10 names 'ungdomsjouren', which is not a receiving unit",
        id="referrer",
    ),
    pytest.param(
        [CATCH_ALL, rule(2000, "norrmalm", districts=["norrmalm"])],
        "position",
        "the rule at position 2000 can never match: the rule at position 1000 matches "
        "everything it would",
        id="after-the-catch-all",
    ),
    pytest.param(
        [rule(5, "norrmalm"), CATCH_ALL],
        "position",
        "the rule at position 1000 can never match: the rule at position 5 matches "
        "everything it would",
        id="two-catch-alls",
    ),
    pytest.param(
        [
            rule(10, "norrmalm", districts=["norrmalm", "ostermalm"]),
            rule(20, "sodermalm", districts=["ostermalm"], min_age=12),
            CATCH_ALL,
        ],
        "position",
        "the rule at position 20 can never match: the rule at position 10 matches "
        "everything it would",
        id="shadowed",
    ),
    pytest.param(
        [rule(10, "norrmalm", min_age=12, max_age=11), CATCH_ALL],
        "match.min_age",
        "min_age is above max_age",
        id="min-age-above-max-age",
    ),
    pytest.param(
        [rule(10, "norrmalm", districts=[]), CATCH_ALL],
        "match.districts",
        "an empty list matches nothing; leave it out",
        id="empty-districts",
    ),
    pytest.param(
        [rule(10, "norrmalm", categories=[]), CATCH_ALL],
        "match.categories",
        "an empty list matches nothing; leave it out",
        id="empty-categories",
    ),
    pytest.param(
        [rule(10, "norrmalm", priorities=[]), CATCH_ALL],
        "match.priorities",
        "an empty list matches nothing; leave it out",
        id="empty-priorities",
    ),
]


@pytest.mark.parametrize(("rules", "field", "message"), INVALID)
def test_validate_refuses(rules: list[Rule], field: str, message: str) -> None:
    error = refusal(rules)
    assert error.field == field
    assert error.message == message


VALID = [
    pytest.param([CATCH_ALL], id="only-a-catch-all"),
    pytest.param(list(RULES), id="the-api-tests-set"),
    pytest.param(list(reversed(RULES)), id="given-in-any-order"),
    pytest.param(
        [rule(10, "norrmalm", min_age=12, max_age=12), rule(11, "norrmalm", min_age=12), CATCH_ALL],
        id="equal-bounds-then-wider",
    ),
    pytest.param(
        [
            rule(10, "norrmalm", districts=["ostermalm"]),
            rule(20, "norrmalm", districts=["ostermalm", "norrmalm"]),
            CATCH_ALL,
        ],
        id="narrow-before-wide",
    ),
    pytest.param(
        [
            rule(10, "norrmalm", min_age=0),
            rule(20, "sodermalm", districts=["sodermalm"]),
            CATCH_ALL,
        ],
        id="age-unknown-still-reaches-later-rules",
    ),
    pytest.param(
        [
            rule(10, "norrmalm", categories=list(ALL_CATEGORIES)),
            rule(20, "sodermalm", priorities=["acute"]),
            CATCH_ALL,
        ],
        id="every-category-does-not-match-none",
    ),
]


@pytest.mark.parametrize("rules", VALID)
def test_validate_accepts(rules: list[Rule]) -> None:
    validate(rules, RECEIVERS)


def test_a_unit_must_be_among_the_receivers_given() -> None:
    rules = [rule(10, "bromma", districts=["bromma"]), CATCH_ALL]
    assert refusal(rules).field == "unit"
    validate(rules, [*RECEIVERS, "bromma"])


# --- properties of decide ----------------------------------------------------------------


@st.composite
def rule_lists(draw: st.DrawFn) -> list[Rule]:
    positions = draw(st.lists(st.integers(0, 60), min_size=0, max_size=7, unique=True))
    rules = [Rule(f"r{p}", p, draw(st.sampled_from(RECEIVERS)), draw(matches())) for p in positions]
    if draw(st.booleans()):
        rules.append(Rule("last", draw(st.integers(61, 100)), "intake", Match()))
    return rules


@settings(max_examples=150, deadline=None)
@given(rules=rule_lists(), given_facts=fact_sets(), version=st.integers(1, 10_000))
def test_decide_takes_the_first_rule_that_holds(
    rules: list[Rule], given_facts: Facts, version: int
) -> None:
    ruleset = RuleSet(version, tuple(rules))
    holding = [
        r for r in sorted(rules, key=lambda r: r.position) if not r.match.misses(given_facts)
    ]
    if not holding:
        with pytest.raises(InvalidRuleSet):
            decide(ruleset, given_facts)
        return
    decision = decide(ruleset, given_facts)
    first = holding[0]
    assert (decision.unit, decision.rule_id, decision.ruleset_version) == (
        first.unit,
        first.id,
        version,
    )
    assert decision.explanation[-1]["rule_id"] == first.id
    assert all(not e["matched"] for e in decision.explanation[:-1])


@st.composite
def valid_rule_lists(draw: st.DrawFn) -> list[Rule]:
    """Random rules, each dropped when an earlier kept one covers it, then a catch-all."""
    kept: list[Rule] = []
    for candidate in sorted(draw(rule_lists()), key=lambda r: r.position):
        # A rule that matches every referral (no condition, or all priorities) ends a set.
        if candidate.match.covers(Match()) or any(k.match.covers(candidate.match) for k in kept):
            continue
        kept.append(candidate)
    return [
        *kept,
        Rule("end", draw(st.integers(61, 100)), draw(st.sampled_from(RECEIVERS)), Match()),
    ]


@settings(max_examples=100, deadline=None)
@given(rules=rule_lists(), given_facts=fact_sets())
def test_validate_accepts_a_set_exactly_when_it_is_well_formed(
    rules: list[Rule], given_facts: Facts
) -> None:
    ordered = sorted(rules, key=lambda r: r.position)
    well_formed = (
        bool(ordered)
        and ordered[-1].match.is_catch_all
        and not any(
            earlier.match.covers(later.match)
            for i, later in enumerate(ordered)
            for earlier in ordered[:i]
        )
    )
    try:
        validate(rules, RECEIVERS)
    except InvalidRuleSet:
        assert not well_formed
    else:
        assert well_formed
        assert decide(RuleSet(1, tuple(rules)), given_facts).unit in RECEIVERS


@settings(max_examples=100, deadline=None)
@given(rules=valid_rule_lists(), given_facts=st.lists(fact_sets(), min_size=1, max_size=10))
def test_a_validated_rule_set_routes_every_referral(
    rules: list[Rule], given_facts: list[Facts]
) -> None:
    validate(rules, RECEIVERS)
    ruleset = RuleSet(1, tuple(rules))
    assert ruleset.rules[-1].match.is_catch_all
    for one in given_facts:
        decision = decide(ruleset, one)
        assert decision.unit in RECEIVERS
        assert ruleset.find(decision.rule_id) is not None


# --- Match serialisation ------------------------------------------------------------------


def test_match_round_trips_and_sorts_codes() -> None:
    data = {
        "districts": ["sodermalm", "norrmalm"],
        "min_age": 0,
        "max_age": 17,
        "categories": ["violence", "drugs"],
        "priorities": ["urgent", "acute"],
    }
    parsed = Match.from_json(data)
    assert parsed.min_age == 0  # zero is a bound, not "any"
    assert parsed.to_json() == {
        "districts": ["norrmalm", "sodermalm"],
        "min_age": 0,
        "max_age": 17,
        "categories": ["drugs", "violence"],
        "priorities": ["acute", "urgent"],
    }
    assert Match.from_json(parsed.to_json()) == parsed
    assert Match.from_json({}).is_catch_all
    assert not Match.from_json({"min_age": 0}).is_catch_all
    assert Rule.from_json({"id": "x", "position": 3, "unit": "intake"}).match.is_catch_all
    one = RULES[0]
    assert Rule.from_json(one.to_json()) == one
