"""Who may read metrics: whoever presents the metrics bearer token.

Metrics hold no personal data, but they do tell how busy each unit is, how many
referrals are overdue and whether the audit sealer keeps up: that is for the operator's
Prometheus, not for anyone who can reach the service.  The token is its own secret
(REFERRALS_METRICS_TOKEN or REFERRALS_METRICS_TOKEN_FILE), never an OIDC access token:
scrapes are not case access and are not audited, and a scraper needs no identity.
"""

from __future__ import annotations

import hmac
from enum import StrEnum

SCHEME = "bearer"
# Sent with every 401, as RFC 6750 asks.
CHALLENGE = 'Bearer realm="metrics"'


class Refusal(StrEnum):
    """The ``reason`` label of ``referrals_metrics_refusals_total``: a closed set."""

    DISABLED = "disabled"  # no token is configured: the app serves no metrics
    MISSING = "missing"  # no bearer token in the request
    INVALID = "invalid"  # a token that is not the configured one


def check(expected: str | None, authorization: str | None) -> Refusal | None:
    """None when ``authorization`` carries ``expected``; otherwise why not.

    The comparison is ``hmac.compare_digest`` on bytes: its time depends on the lengths
    only, never on how many leading characters of a guess are right."""
    if expected is None:
        return Refusal.DISABLED
    if not authorization:
        return Refusal.MISSING
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != SCHEME or not presented.strip():
        return Refusal.MISSING
    if not hmac.compare_digest(presented.strip().encode(), expected.encode()):
        return Refusal.INVALID
    return None
