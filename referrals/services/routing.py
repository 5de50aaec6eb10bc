"""Routing: the rule sets admins keep, the preview, and the decision on submit.

Every change to the rules stores a whole new rule-set version; old versions stay, so the
decision stored with a referral (rule id, version) can always be explained afterwards.
The client never chooses the receiving unit.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.exc import IntegrityError

from referrals.auth import policy
from referrals.db.models import Referral, RoutingRuleSet
from referrals.domain import routing
from referrals.domain.codes import Priority, UnitKind
from referrals.domain.personal_number import age_on
from referrals.domain.routing import Decision, Facts, Rule, RuleSet
from referrals.services import records
from referrals.services.access import referring_unit
from referrals.services.context import Context
from referrals.services.errors import Conflict, Forbidden, NotFound
from referrals.services.uow import UnitOfWork

View = dict[str, Any]


def current(uow: UnitOfWork) -> RuleSet | None:
    stored = uow.routing.latest()
    return _ruleset(stored) if stored is not None else None


@dataclass(frozen=True)
class RoutingInputs:
    """What deciding where a referral goes reads: every unit's kind by id, and the
    current rule set (None when there is none)."""

    kinds: Mapping[str, str]
    ruleset: RuleSet | None


def routing_inputs(uow: UnitOfWork) -> RoutingInputs:
    """Every unit's kind and the current rule set, in one statement: what a create+submit
    reads before it decides."""
    kinds, latest = uow.units.kinds_with_latest_rules()
    return RoutingInputs(kinds, _parsed(*latest) if latest is not None else None)


@functools.lru_cache(maxsize=4)
def _parsed(version: int, rules: str) -> RuleSet:
    """A rule set parsed once per process for its exact text: every create reads the text
    anew (so a change is seen at once, as before), and only a text not seen before is
    parsed.  Rules are frozen values, safe to share between requests and threads."""
    return RuleSet(version, tuple(Rule.from_json(r) for r in json.loads(rules)))


def decide_for(uow: UnitOfWork, facts: Facts) -> Decision:
    """The receiving unit for a referral being submitted."""
    return decider(uow)(facts)


def decider(uow: UnitOfWork, inputs: RoutingInputs | None = None) -> Callable[[Facts], Decision]:
    """``decide_for`` with the units and the current rule set read once: for many
    referrals decided in one transaction (the bulk import), which sees one rule set
    throughout anyway.  A caller that has read them already (``routing_inputs``) passes
    them."""
    if inputs is None:
        inputs = routing_inputs(uow)
    ruleset, kinds = inputs.ruleset, inputs.kinds

    def decide(facts: Facts) -> Decision:
        if ruleset is None:
            raise Conflict("no routing rules are configured; an administrator must add them")
        decision = routing.decide(ruleset, facts)
        if kinds.get(decision.unit) != UnitKind.RECEIVER:
            raise Conflict("the routing rules name a unit that no longer receives referrals")
        return decision

    return decide


def facts_of_row(row: Referral, *, age: int | None) -> Facts:
    return Facts(
        district=row.district,
        age=age,
        categories=frozenset(row.categories),
        priority=row.priority,
    )


def facts_of_body(body: Mapping[str, Any], today: date) -> Facts:
    """The routing facts of a referral body as it would be on submission today."""
    subject = body.get("subject") or {}
    _number, birth_date = records.identity_of(subject, today)
    return Facts(
        district=subject.get("district"),
        age=age_on(birth_date, today) if birth_date else None,
        categories=frozenset(body.get("categories") or ()),
        priority=body.get("priority") or Priority.NORMAL,
    )


def preview(uow: UnitOfWork, ctx: Context, body: Mapping[str, Any]) -> View:
    """Where this referral would go and why; nothing of the body is stored."""
    if not policy.may_manage_routing(ctx.principal):
        referring_unit(uow, ctx)  # a youth worker of a registered referring unit, or 403
    # The very decision submitting would take, checks included.
    decision = decide_for(uow, facts_of_body(body, ctx.today))
    uow.commit()  # records the request's audit event
    return {
        "unit": decision.unit,
        "rule_id": decision.rule_id,
        "ruleset_version": decision.ruleset_version,
        "explanation": decision.explanation,
    }


def rules(uow: UnitOfWork, ctx: Context, version: int | None = None) -> View:
    _require(policy.may_manage_routing(ctx.principal))
    stored = uow.routing.latest() if version is None else uow.routing.get(version)
    if stored is None and version is not None:
        raise NotFound("no such rule-set version")
    uow.commit()
    if stored is None:
        return {"version": None, "created_at": None, "items": []}
    return _represent_set(stored)


def versions(uow: UnitOfWork, ctx: Context) -> list[View]:
    _require(policy.may_manage_routing(ctx.principal))
    items = [
        {"version": s.version, "created_at": s.created_at, "rules": len(s.rules)}
        for s in uow.routing.versions()
    ]
    uow.commit()
    return items


def add_rule(uow: UnitOfWork, ctx: Context, body: Mapping[str, Any]) -> View:
    _require(policy.may_manage_routing(ctx.principal))
    rule = _rule(str(uuid.uuid4()), body)
    existing = current(uow)
    stored = _save(uow, ctx, [*(existing.rules if existing else ()), rule])
    uow.audit_target("routing-rule", rule.id)
    uow.commit()
    return {**rule.to_json(), "ruleset_version": stored.version}


def replace_rule(uow: UnitOfWork, ctx: Context, rule_id: str, body: Mapping[str, Any]) -> View:
    _require(policy.may_manage_routing(ctx.principal))
    existing = _existing(uow, rule_id)
    rule = _rule(rule_id, body)
    stored = _save(uow, ctx, [rule if r.id == rule_id else r for r in existing.rules])
    uow.commit()
    return {**rule.to_json(), "ruleset_version": stored.version}


def delete_rule(uow: UnitOfWork, ctx: Context, rule_id: str) -> int:
    _require(policy.may_manage_routing(ctx.principal))
    existing = _existing(uow, rule_id)
    stored = _save(uow, ctx, [r for r in existing.rules if r.id != rule_id])
    uow.commit()
    return stored.version


def install(uow: UnitOfWork, ctx: Context, bodies: Sequence[Mapping[str, Any]]) -> int | None:
    """Replace the whole rule set (seeding); None when it is already exactly this."""
    existing = current(uow)
    new = [_rule(str(uuid.uuid4()), body) for body in bodies]
    if existing is not None and _shape(existing.rules) == _shape(new):
        return None
    stored = _save(uow, ctx, new)
    uow.commit()
    return stored.version


def _save(uow: UnitOfWork, ctx: Context, rules: Sequence[Rule]) -> RoutingRuleSet:
    routing.validate(rules, (u.id for u in uow.units.receivers()))
    latest = uow.routing.latest()
    stored = RoutingRuleSet(
        version=(latest.version if latest else 0) + 1,
        created_at=ctx.now,
        created_by=ctx.principal.actor,
        rules=[r.to_json() for r in sorted(rules, key=lambda r: r.position)],
    )
    try:
        uow.routing.add(stored)
    except IntegrityError:
        # Another admin saved a version in between: theirs stands, ours is not merged.
        raise Conflict("the routing rules were changed meanwhile; read them again") from None
    return stored


def _existing(uow: UnitOfWork, rule_id: str) -> RuleSet:
    existing = current(uow)
    if existing is None or existing.find(rule_id) is None:
        raise NotFound("no such routing rule in the current rule set")
    return existing


def _rule(rule_id: str, body: Mapping[str, Any]) -> Rule:
    return Rule(
        id=rule_id,
        position=body["position"],
        unit=body["unit"],
        match=routing.Match.from_json(body.get("match") or {}),
    )


def _ruleset(stored: RoutingRuleSet) -> RuleSet:
    return RuleSet(stored.version, tuple(Rule.from_json(r) for r in stored.rules))


def _represent_set(stored: RoutingRuleSet) -> View:
    return {
        "version": stored.version,
        "created_at": stored.created_at,
        "items": [
            {**Rule.from_json(r).to_json(), "ruleset_version": stored.version} for r in stored.rules
        ],
    }


def _shape(rules: Sequence[Rule]) -> list[tuple[int, str, str]]:
    return sorted((r.position, r.unit, json.dumps(r.match.to_json())) for r in rules)


def _require(allowed: bool) -> None:
    if not allowed:
        raise Forbidden("this role may not do this")
