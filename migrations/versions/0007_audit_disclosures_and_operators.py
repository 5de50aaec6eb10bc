"""Every referral an event disclosed (audit_event_targets), and operators' reasons.

A list, a search or a duplicate warning discloses many referrals under one event; each is
named in ``audit_event_targets`` so that a referral's access log shows who saw it, however
it was shown.  ``audit_events.reason`` holds the reason an operator gave for a command-line
change.  Both are hashed with their event only when present, so events sealed before this
revision still verify.  The new table is append-only like the other audit tables.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "audit_event_targets"


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("reason", sa.String(length=64), nullable=True))
    op.create_table(
        TABLE,
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["audit_events.id"],
            name=op.f("fk_audit_event_targets_event_id_audit_events"),
        ),
        sa.PrimaryKeyConstraint("event_id", "referral_id", name=op.f("pk_audit_event_targets")),
    )
    op.create_index("ix_audit_event_targets_referral", TABLE, ["referral_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # The function is revision 0003's: UPDATE, DELETE and TRUNCATE are refused.
        op.execute(
            f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION referrals_audit_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION referrals_audit_append_only()"
        )


def downgrade() -> None:
    # Dropping the table would delete the record of who saw which referral in a list.
    raise NotImplementedError("revision 0007 is not reversible: it would delete audit records")
