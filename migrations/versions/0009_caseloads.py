"""Caseloads that move: assignment is a staff identity, and who is staff of a unit.

``unit_staff`` remembers the caseworkers and unit leads the identity provider vouched for
as acting for a receiving unit; a referral is assigned only to one of them.
``referrals.assignee_issuer`` says under which issuer ``assignee`` is a subject (a value
without one is a free-text name from before this revision, left as it was: it names no
staff identity, so no reassignment moves it).  Timeline events record the assignee before
and after an assignment.

Revision ID: 0009
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "unit_staff",
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_unit_staff_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("unit_id", "issuer", "subject", name=op.f("pk_unit_staff")),
    )
    op.add_column("referrals", sa.Column("assignee_issuer", sa.String(length=500), nullable=True))
    op.create_index(
        "ix_referrals_receiving_unit_assignee",
        "referrals",
        ["receiving_unit_id", "assignee"],
        unique=False,
    )
    op.add_column(
        "timeline_events", sa.Column("previous_assignee", sa.String(length=200), nullable=True)
    )
    op.add_column("timeline_events", sa.Column("assignee", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("timeline_events") as batch:
        batch.drop_column("assignee")
        batch.drop_column("previous_assignee")
    op.drop_index("ix_referrals_receiving_unit_assignee", table_name="referrals")
    with op.batch_alter_table("referrals") as batch:
        batch.drop_column("assignee_issuer")
    op.drop_table("unit_staff")
