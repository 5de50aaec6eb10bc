"""Withdrawing the consent a referral was passed on under (legal basis ``consent``).

The sending side records the withdrawal with a reason code (who withdrew it).  What it
means (README: Consent withdrawal):

- a referral still open (requested, accepted, in progress, on hold) is closed:
  ``cancelled`` with reason ``consent_withdrawn`` — nothing more is shared on it, and a
  referral the receiving unit had not accepted never disclosed the identity to it;
- a closed one keeps its status; the withdrawal is recorded on it all the same;
- the receiving unit sees only the decision view of it from then on (identity and free
  text are no longer disclosed to it in this service, whatever it had seen before);
- either way the receiving unit is told (webhook ``referral.consent_withdrawn``), the
  timeline shows it (``withdraw_consent``), and the personal data is then kept only as
  long as the retention period for its outcome allows (or erased at once on request).

A draft has not been shared with anyone: it is deleted instead (409).
"""

from __future__ import annotations

import uuid

from referrals.domain.codes import (
    CONSENT_WITHDRAWN,
    OPEN_STATUSES,
    ConsentWithdrawal,
    LegalBasis,
    Side,
    Status,
)
from referrals.domain.errors import ActionNotAllowed
from referrals.services import outbox
from referrals.services.access import open_referral
from referrals.services.context import Context
from referrals.services.errors import Conflict
from referrals.services.referrals import View, get_view
from referrals.services.timeline import record_event
from referrals.services.uow import UnitOfWork

WITHDRAW_CONSENT = "withdraw_consent"


def withdraw(
    uow: UnitOfWork, ctx: Context, referral_id: uuid.UUID, reason: ConsentWithdrawal
) -> View:
    row, side = open_referral(uow, ctx, referral_id)
    if side is not Side.SENDER:
        raise ActionNotAllowed("only the sending unit records a withdrawal of consent")
    if row.erased_at is not None:
        raise Conflict("the referral has been erased", field="status")
    if row.legal_basis != LegalBasis.CONSENT:
        raise Conflict("the referral does not rest on consent", field="legal_basis")
    if row.status == Status.DRAFT:
        raise Conflict("a draft has not been shared: delete it instead", field="status")
    if row.consent_withdrawn_at is not None:
        raise Conflict("the consent has already been withdrawn", field="reason_code")
    from_status = row.status
    row.consent_withdrawn_at = row.updated_at = ctx.now
    if row.status in OPEN_STATUSES:
        row.status = Status.CANCELLED
        row.reason_code = CONSENT_WITHDRAWN
    # No further processing on the withdrawn basis: the receiving unit reads the
    # decision view from now on, whatever had been disclosed to it.
    row.identity_disclosed_to = None
    record_event(
        row, ctx, None, action=WITHDRAW_CONSENT, from_status=from_status, reason_code=reason
    )
    recipients = {row.sending_unit_id, row.receiving_unit_id} - {ctx.principal.unit}
    outbox.announce(uow, row, outbox.CONSENT_WITHDRAWN, recipients, ctx.now)
    uow.commit()
    return get_view(ctx, row, side)
