"""Two-phase disclosure and consent withdrawal.

``referrals.identity_disclosed_to`` is the receiving unit that has seen a referral's
identity and free text (on accept, or by an audited reveal before deciding);
``referrals.consent_withdrawn_at`` is when the sender recorded that the consent it rests
on was withdrawn.  Referrals accepted before this revision were disclosed to the unit
that accepted them: every referral whose timeline has an ``accept`` by its current
receiving unit is marked so.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "referrals", sa.Column("identity_disclosed_to", sa.String(length=64), nullable=True)
    )
    op.add_column(
        "referrals",
        sa.Column("consent_withdrawn_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.execute(
        "UPDATE referrals SET identity_disclosed_to = receiving_unit_id WHERE EXISTS ("
        "SELECT 1 FROM timeline_events e WHERE e.referral_id = referrals.id "
        "AND e.action = 'accept' AND e.actor_unit = referrals.receiving_unit_id)"
    )


def downgrade() -> None:
    # Dropping the columns would forget that a person withdrew their consent, and would
    # show every referral's identity to receiving units that never accepted it.
    raise NotImplementedError(
        "revision 0008 is not reversible: it would forget consent withdrawals and disclosures"
    )
