"""Units: the referring and receiving organisations.  Administered by admins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from referrals.auth import policy
from referrals.db.models import Unit
from referrals.services.context import Context
from referrals.services.errors import Conflict, Forbidden, NotFound
from referrals.services.uow import UnitOfWork

# The embedded default: the outreach team and some Stockholm district social offices,
# plus the central intake unit that takes whatever no district unit serves.
DEMO_UNITS: tuple[dict[str, Any], ...] = (
    {"id": "ungdomsjouren", "name": "Ungdomsjouren", "kind": "referrer", "districts": []},
    {"id": "norrmalm", "name": "Norrmalms stadsdelsförvaltning", "kind": "receiver",
     "districts": ["norrmalm"]},
    {"id": "sodermalm", "name": "Södermalms stadsdelsförvaltning", "kind": "receiver",
     "districts": ["sodermalm"]},
    {"id": "kungsholmen", "name": "Kungsholmens stadsdelsförvaltning", "kind": "receiver",
     "districts": ["kungsholmen"]},
    {"id": "intake", "name": "Central mottagning", "kind": "receiver", "districts": []},
)  # fmt: skip


def represent(unit: Unit, ctx: Context) -> dict[str, Any]:
    return {
        "id": unit.id,
        "name": unit.name,
        "kind": unit.kind,
        "districts": list(unit.districts),
        # Integration endpoints are operator business, not part of the directory.
        "webhook_url": unit.webhook_url if policy.may_manage_units(ctx.principal) else None,
        "created_at": unit.created_at,
        "updated_at": unit.updated_at,
    }


def list_all(uow: UnitOfWork, ctx: Context) -> list[dict[str, Any]]:
    _require(policy.may_list_units(ctx.principal))
    items = [represent(u, ctx) for u in uow.units.all()]
    uow.commit()  # records the read's audit event
    return items


def get(uow: UnitOfWork, ctx: Context, unit_id: str) -> dict[str, Any]:
    _require(policy.may_list_units(ctx.principal))
    unit = uow.units.get(unit_id)
    if unit is None:
        raise NotFound("no such unit")
    view = represent(unit, ctx)
    uow.commit()  # records the read's audit event
    return view


def create(uow: UnitOfWork, ctx: Context, body: Mapping[str, Any]) -> dict[str, Any]:
    _require(policy.may_manage_units(ctx.principal))
    if uow.units.get(body["id"]) is not None:
        raise Conflict("a unit with this id exists", field="id")
    unit = Unit(created_at=ctx.now, updated_at=ctx.now, **_fields(body), id=body["id"])
    uow.units.add(unit)
    uow.audit_target("unit", unit.id)
    uow.commit()
    return represent(unit, ctx)


def replace(uow: UnitOfWork, ctx: Context, unit_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    _require(policy.may_manage_units(ctx.principal))
    unit = uow.units.get(unit_id)
    if unit is None:
        raise NotFound("no such unit")
    for name, value in _fields(body).items():
        setattr(unit, name, value)
    unit.updated_at = ctx.now
    uow.session.flush()
    uow.commit()
    return represent(unit, ctx)


def seed_demo(uow: UnitOfWork, ctx: Context) -> int:
    """Create the demo units that do not exist yet; returns how many were created."""
    created = 0
    for data in DEMO_UNITS:
        if uow.units.get(data["id"]) is None:
            uow.units.add(Unit(created_at=ctx.now, updated_at=ctx.now, webhook_url=None, **data))
            created += 1
    uow.commit()
    return created


def _fields(body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": body["name"],
        "kind": body["kind"],
        "districts": sorted(set(body.get("districts") or [])),
        "webhook_url": body.get("webhook_url"),
    }


def _require(allowed: bool) -> None:
    if not allowed:
        raise Forbidden("this role may not do this")
