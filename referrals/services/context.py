"""What every use case is given besides its arguments: who asks, and when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from referrals.auth.principal import Principal
from referrals.domain.codes import BreakGlassReason, DisclosurePolicy
from referrals.domain.deadlines import DeadlinePolicy
from referrals.services.vault import Vault
from referrals.webhooks.destinations import UNRESTRICTED, Destinations


@dataclass(frozen=True)
class Context:
    principal: Principal
    # One "now" per request: every timestamp a use case writes is the same instant.
    now: datetime
    deadlines: DeadlinePolicy
    vault: Vault
    # A caseworker's declared emergency (``X-Break-Glass-Reason``), honoured by reads only.
    break_glass: BreakGlassReason | None = None
    # Serving real data: development conveniences (plain-http webhooks) are refused.
    production: bool = False
    # Where webhooks may point (production: no internal address unless allow-listed).
    destinations: Destinations = UNRESTRICTED
    # When the receiving unit sees identity and free text (referrals/domain/disclosure.py).
    disclosure: DisclosurePolicy = DisclosurePolicy.ON_ACCEPT

    @property
    def today(self) -> date:
        """The calendar day where the units work: ages and "same day" follow it, not UTC."""
        return self.now.astimezone(ZoneInfo(self.deadlines.timezone)).date()
