"""Audit trail: events, their seals in the hash chain, signed checkpoints.

On PostgreSQL the three tables are append-only: a trigger rejects UPDATE, DELETE and
TRUNCATE for every role (the application's included).

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


AUDIT_TABLES = ("audit_events", "audit_seals", "audit_checkpoints")


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("head", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous", sa.LargeBinary(), nullable=True),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("actor_verified", sa.Boolean(), nullable=False),
        sa.Column("actor_issuer", sa.String(length=500), nullable=True),
        sa.Column("actor_subject", sa.String(length=500), nullable=True),
        sa.Column("client_id", sa.String(length=500), nullable=True),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_action"), ["action"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_events_actor_subject"), ["actor_subject"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_audit_events_outcome"), ["outcome"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_events_recorded_at"), ["recorded_at"], unique=False
        )
        batch_op.create_index("ix_audit_events_target", ["target_type", "target_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_purpose"), ["purpose"], unique=False)

    op.create_table(
        "audit_seals",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["audit_events.id"], name=op.f("fk_audit_seals_event_id_audit_events")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_seals")),
        sa.UniqueConstraint("event_id", name=op.f("uq_audit_seals_event_id")),
    )

    op.create_table(
        "break_glass_grants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("actor", sa.String(length=500), nullable=False),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_break_glass_grants_referral_id_referrals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_break_glass_grants")),
    )
    op.create_index(
        "ix_break_glass_grants_actor_referral",
        "break_glass_grants",
        ["actor", "referral_id"],
        unique=False,
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION referrals_audit_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit records are append-only: % on % refused',
                    TG_OP, TG_TABLE_NAME;
            END
            $$
            """
        )
        for table in AUDIT_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION referrals_audit_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION referrals_audit_append_only()"
            )


def downgrade() -> None:
    # Dropping these tables would destroy the record of who accessed which case.
    raise NotImplementedError("revision 0003 is not reversible: it would delete the audit trail")
