"""Routing rules: which receiving unit a submitted referral goes to, and why.

Pure: a rule set and a referral's coarse facts in, a decision out.  The same function
answers ``POST /routing/preview`` and routes on submit, so the two cannot disagree.

Rules are tried in ascending ``position``; the first whose every condition holds wins.
A condition that is absent matches anything.  A rule set must end in a catch-all (a
rule without conditions), so every referral lands somewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from referrals.domain.codes import Priority
from referrals.domain.errors import DomainError

MAX_AGE = 130
ALL_PRIORITIES = frozenset(p.value for p in Priority)


class InvalidRuleSet(DomainError):
    """A rule set that would leave referrals unrouted or rules unreachable."""

    code = "invalid_rule_set"


@dataclass(frozen=True)
class Match:
    """A rule's conditions.  ``None`` means "any"; lists match when they overlap."""

    districts: frozenset[str] | None = None
    min_age: int | None = None
    max_age: int | None = None
    categories: frozenset[str] | None = None
    priorities: frozenset[str] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Match:
        def codes(key: str) -> frozenset[str] | None:
            value = data.get(key)
            return None if value is None else frozenset(value)

        return cls(
            districts=codes("districts"),
            min_age=data.get("min_age"),
            max_age=data.get("max_age"),
            categories=codes("categories"),
            priorities=codes("priorities"),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("districts", "categories", "priorities"):
            value = getattr(self, key)
            if value is not None:
                out[key] = sorted(value)
        for key in ("min_age", "max_age"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @property
    def is_catch_all(self) -> bool:
        return self == Match()

    def misses(self, facts: Facts) -> list[str]:
        """Why these conditions do not hold for ``facts`` (empty when they do).

        Explanations name coarse routing facts only (district, age, categories,
        priority): never anything personal."""
        reasons = []
        if self.districts is not None:
            if facts.district is None:
                reasons.append("the referral names no district")
            elif facts.district not in self.districts:
                reasons.append(f"district {facts.district} is not one of {_listed(self.districts)}")
        if self.min_age is not None or self.max_age is not None:
            if facts.age is None:
                reasons.append("the subject's age is unknown")
            elif self.min_age is not None and facts.age < self.min_age:
                reasons.append(f"age {facts.age} is below {self.min_age}")
            elif self.max_age is not None and facts.age > self.max_age:
                reasons.append(f"age {facts.age} is above {self.max_age}")
        if self.categories is not None and not self.categories & facts.categories:
            reasons.append(f"no category is one of {_listed(self.categories)}")
        if self.priorities is not None and facts.priority not in self.priorities:
            reasons.append(f"priority {facts.priority} is not one of {_listed(self.priorities)}")
        return reasons

    def covers(self, other: Match) -> bool:
        """True when every referral ``other`` matches is matched by this one too."""

        def covers_codes(mine: frozenset[str] | None, theirs: frozenset[str] | None) -> bool:
            # Overlap semantics: a referral with any of ``theirs`` must hit ``mine``.
            return mine is None or (theirs is not None and theirs <= mine)

        # Every referral has exactly one priority: listing them all is no condition.
        # (Not so for categories: a referral may have none.)
        mine_priorities = None if self.priorities == ALL_PRIORITIES else self.priorities

        low, high = self.min_age or 0, MAX_AGE if self.max_age is None else self.max_age
        if self.min_age is not None or self.max_age is not None:
            if other.min_age is None and other.max_age is None:
                return False
            their_low = other.min_age or 0
            their_high = MAX_AGE if other.max_age is None else other.max_age
            if their_low < low or their_high > high:
                return False
        return (
            covers_codes(self.districts, other.districts)
            and covers_codes(self.categories, other.categories)
            and covers_codes(mine_priorities, other.priorities)
        )


@dataclass(frozen=True)
class Rule:
    id: str
    position: int
    unit: str
    match: Match

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rule:
        return cls(
            id=data["id"],
            position=data["position"],
            unit=data["unit"],
            match=Match.from_json(data.get("match") or {}),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "position": self.position,
            "unit": self.unit,
            "match": self.match.to_json(),
        }


@dataclass(frozen=True)
class RuleSet:
    version: int
    rules: tuple[Rule, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(sorted(self.rules, key=lambda r: r.position)))

    def find(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


@dataclass(frozen=True)
class Facts:
    """What routing may look at: the coarse, plaintext fields of a referral."""

    district: str | None
    age: int | None
    categories: frozenset[str]
    priority: str


@dataclass(frozen=True)
class Decision:
    unit: str
    rule_id: str
    ruleset_version: int
    # One entry per rule tried, in order, ending with the rule that matched.
    explanation: list[dict[str, Any]] = field(default_factory=list)


def decide(ruleset: RuleSet, facts: Facts) -> Decision:
    explanation: list[dict[str, Any]] = []
    for rule in ruleset.rules:
        reasons = rule.match.misses(facts)
        entry = {"rule_id": rule.id, "position": rule.position, "unit": rule.unit}
        explanation.append({**entry, "matched": not reasons, "reasons": reasons})
        if not reasons:
            return Decision(rule.unit, rule.id, ruleset.version, explanation)
    # validate() makes this unreachable for a stored rule set; say so if it happens.
    raise InvalidRuleSet("the routing rules have no catch-all rule")


def validate(rules: Sequence[Rule], receivers: Iterable[str]) -> None:
    """Refuse a rule set that is empty, ambiguous, or incomplete, or has a rule that a
    single earlier rule shadows (it matches everything the later one would).  Shadowing by
    several earlier rules together is not detected."""
    if not rules:
        raise InvalidRuleSet("a rule set needs at least a catch-all rule", field="match")
    known = set(receivers)
    seen: dict[int, Rule] = {}
    for rule in rules:
        if rule.position in seen:
            raise InvalidRuleSet(
                f"position {rule.position} is taken by another rule", field="position"
            )
        seen[rule.position] = rule
        if rule.unit not in known:
            raise InvalidRuleSet(
                f"the rule at position {rule.position} names {rule.unit!r}, which is not a "
                "receiving unit",
                field="unit",
            )
        _check_match(rule.match)
    ordered = sorted(rules, key=lambda r: r.position)
    for index, rule in enumerate(ordered):
        for earlier in ordered[:index]:
            if earlier.match.covers(rule.match):
                raise InvalidRuleSet(
                    f"the rule at position {rule.position} can never match: the rule at "
                    f"position {earlier.position} matches everything it would",
                    field="position",
                )
    if not ordered[-1].match.is_catch_all:
        raise InvalidRuleSet(
            "the last rule must be a catch-all (empty match) so every referral is routed",
            field="match",
        )


def _check_match(match: Match) -> None:
    for name in ("districts", "categories", "priorities"):
        value = getattr(match, name)
        if value is not None and not value:
            raise InvalidRuleSet(
                "an empty list matches nothing; leave it out", field=f"match.{name}"
            )
    if match.min_age is not None and match.max_age is not None and match.min_age > match.max_age:
        raise InvalidRuleSet("min_age is above max_age", field="match.min_age")


def _listed(values: frozenset[str]) -> str:
    return ", ".join(sorted(values))
