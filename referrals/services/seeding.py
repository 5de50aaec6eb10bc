"""Seed documents: units and routing rules in one JSON file (``referrals seed``).

Packaged seeds live in referrals/seeds/; an organisation writes its own in the same shape
and loads it with ``referrals seed file``.  Seeding adds the units that do not exist yet
(existing ones, and the endpoints admins set on them, are left alone) and makes the
document's rules the current rule set (a new version, unless they already are).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from referrals.db.models import Unit
from referrals.services import routing, units
from referrals.services.context import Context
from referrals.services.uow import UnitOfWork

PACKAGED = ("demo", "stockholm")


@dataclass(frozen=True)
class Seeded:
    units_created: int
    ruleset_version: int | None  # None: the rules were already current


def packaged(name: str) -> dict[str, Any]:
    text = resources.files("referrals.seeds").joinpath(f"{name}.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def apply(uow: UnitOfWork, ctx: Context, document: Mapping[str, Any]) -> Seeded:
    """``document`` is validated already (referrals/api/schemas/units.py, SeedDocument)."""
    created = 0
    for data in document["units"]:
        # A seeded endpoint is sent to once enabled: the same rules as the admin API's.
        units.check_webhook_url(ctx, data.get("webhook_url"))
        if uow.units.get(data["id"]) is None:
            uow.units.add(
                Unit(
                    id=data["id"],
                    name=data["name"],
                    kind=data["kind"],
                    districts=sorted(set(data.get("districts") or [])),
                    webhook_url=data.get("webhook_url"),
                    # A seeded endpoint has no secret yet: an admin enables it with PUT,
                    # which issues one.
                    webhook_enabled=False,
                    created_at=ctx.now,
                    updated_at=ctx.now,
                )
            )
            created += 1
    uow.session.flush()
    version = routing.install(uow, ctx, document["rules"])
    uow.commit()
    return Seeded(created, version)
