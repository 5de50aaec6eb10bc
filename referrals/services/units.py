"""Units: the referring and receiving organisations.  Administered by admins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from referrals.auth import policy
from referrals.db.models import Unit
from referrals.domain.codes import UnitKind
from referrals.services import routing
from referrals.services.context import Context
from referrals.services.errors import Conflict, Forbidden, NotFound, Unprocessable
from referrals.services.uow import UnitOfWork
from referrals.services.vault import webhook_secret_context
from referrals.webhooks import destinations, signing


def represent(unit: Unit, ctx: Context, *, new_secret: str | None = None) -> dict[str, Any]:
    admin = policy.may_manage_units(ctx.principal)
    view = {
        "id": unit.id,
        "name": unit.name,
        "kind": unit.kind,
        "districts": list(unit.districts),
        # Integration endpoints are operator business, not part of the directory.
        "webhook_url": unit.webhook_url if admin else None,
        "webhook_enabled": unit.webhook_enabled if admin else None,
        "created_at": unit.created_at,
        "updated_at": unit.updated_at,
    }
    if new_secret is not None:
        # Shown once, to the admin who set the endpoint; only its sealed form is kept.
        view["webhook_secret"] = new_secret
    return view


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
    unit = Unit(created_at=ctx.now, updated_at=ctx.now, **_fields(ctx, body, None), id=body["id"])
    secret = _issue_secret(ctx, unit) if unit.webhook_url else None
    uow.units.add(unit)
    uow.audit_target("unit", unit.id)
    uow.commit()
    return represent(unit, ctx, new_secret=secret)


def replace(uow: UnitOfWork, ctx: Context, unit_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    _require(policy.may_manage_units(ctx.principal))
    unit = uow.units.get(unit_id)
    if unit is None:
        raise NotFound("no such unit")
    fields = _fields(ctx, body, unit)
    if fields["kind"] != UnitKind.RECEIVER and _routed_to(uow, unit_id):
        raise Conflict("routing rules send referrals to this unit; change them first", field="kind")
    if body.get("rotate_webhook_secret") and not fields["webhook_url"]:
        raise Unprocessable("there is no webhook endpoint to rotate the secret of",
                            field="rotate_webhook_secret")  # fmt: skip
    moved = fields["webhook_url"] != unit.webhook_url
    for name, value in fields.items():
        setattr(unit, name, value)
    secret = None
    if not unit.webhook_url:
        unit.webhook_secret = unit.webhook_secret_kek_id = None
    elif unit.webhook_secret is None or moved or body.get("rotate_webhook_secret"):
        # A new endpoint gets a new secret: whoever ran the old one cannot sign for it.
        secret = _issue_secret(ctx, unit)
    unit.updated_at = ctx.now
    uow.session.flush()
    uow.commit()
    return represent(unit, ctx, new_secret=secret)


def _issue_secret(ctx: Context, unit: Unit) -> str:
    secret = signing.new_secret()
    unit.webhook_secret, unit.webhook_secret_kek_id = ctx.vault.seal_secret(
        webhook_secret_context(unit.id), secret
    )
    return secret


def _routed_to(uow: UnitOfWork, unit_id: str) -> bool:
    ruleset = routing.current(uow)
    return ruleset is not None and any(r.unit == unit_id for r in ruleset.rules)


def check_webhook_url(ctx: Context, url: str | None) -> None:
    """A URL the worker can send to (a real host, a port from 1 to 65535), and in
    production none written as an internal address (the worker checks names at send time)."""
    if not url:
        return
    malformed = destinations.url_problem(url)
    if malformed is not None:
        raise Unprocessable(f"the webhook endpoint {malformed}", field="webhook_url")
    refused = ctx.destinations.input_problem(url)
    if refused is not None:
        raise Unprocessable(refused, field="webhook_url")


def _fields(ctx: Context, body: Mapping[str, Any], current: Unit | None) -> dict[str, Any]:
    url = body.get("webhook_url")
    check_webhook_url(ctx, url)
    if ctx.production and url and not url.startswith("https://"):
        # Payloads hold no personal data, but the signature and the receiver's trust in
        # it do not survive a network observer who can replay or block them.
        raise Unprocessable("webhook endpoints must use https in production", field="webhook_url")
    if not url:
        enabled = False
    elif "webhook_enabled" in body:
        enabled = body["webhook_enabled"]
    else:
        # Unsaid: a new endpoint is live at once; an unchanged one stays as it was (renaming
        # a seeded unit must not switch on its placeholder endpoint).
        enabled = current.webhook_enabled if current and current.webhook_url == url else True
    return {
        "name": body["name"],
        "kind": body["kind"],
        "districts": sorted(set(body.get("districts") or [])),
        "webhook_url": url,
        "webhook_enabled": enabled,
    }


def _require(allowed: bool) -> None:
    if not allowed:
        raise Forbidden("this role may not do this")
