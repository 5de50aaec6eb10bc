"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 15:18:19.097395
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "units",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("districts", sa.JSON(), nullable=False),
        sa.Column("webhook_url", sa.String(length=2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_units")),
    )
    op.create_table(
        "referrals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("sending_unit_id", sa.String(length=64), nullable=False),
        sa.Column("receiving_unit_id", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=500), nullable=False),
        sa.Column("priority", sa.String(length=40), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("legal_basis", sa.String(length=40), nullable=True),
        sa.Column("consent_given_by", sa.String(length=40), nullable=True),
        sa.Column("consent_given_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("district", sa.String(length=64), nullable=True),
        sa.Column("age_at_submission", sa.Integer(), nullable=True),
        sa.Column("assignee", sa.String(length=200), nullable=True),
        sa.Column("outcome_code", sa.String(length=40), nullable=True),
        sa.Column("reason_code", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("subject_name", sa.String(), nullable=True),
        sa.Column("personal_number", sa.String(), nullable=True),
        sa.Column("birth_date", sa.String(), nullable=True),
        sa.Column("phone", sa.String(), nullable=True),
        sa.Column("guardian_name", sa.String(), nullable=True),
        sa.Column("guardian_phone", sa.String(), nullable=True),
        sa.Column("narrative", sa.String(), nullable=True),
        sa.Column("place_met", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["receiving_unit_id"], ["units.id"], name=op.f("fk_referrals_receiving_unit_id_units")
        ),
        sa.ForeignKeyConstraint(
            ["sending_unit_id"], ["units.id"], name=op.f("fk_referrals_sending_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
    )
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_referrals_receiving_unit_created",
            ["receiving_unit_id", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_referrals_sending_unit_created",
            ["sending_unit_id", "created_at", "id"],
            unique=False,
        )

    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("actor", sa.String(length=500), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_idempotency_keys_referral_id_referrals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("actor", "key", name=op.f("uq_idempotency_keys_actor")),
    )
    op.create_table(
        "notes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(length=500), nullable=False),
        sa.Column("author_unit", sa.String(length=64), nullable=True),
        sa.Column("author_side", sa.String(length=40), nullable=False),
        sa.Column("visibility", sa.String(length=40), nullable=False),
        sa.Column("text", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referrals.id"], name=op.f("fk_notes_referral_id_referrals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notes")),
    )
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notes_referral_id"), ["referral_id"], unique=False)

    op.create_table(
        "timeline_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=500), nullable=False),
        sa.Column("actor_unit", sa.String(length=64), nullable=True),
        sa.Column("from_status", sa.String(length=40), nullable=True),
        sa.Column("to_status", sa.String(length=40), nullable=False),
        sa.Column("from_unit", sa.String(length=64), nullable=True),
        sa.Column("to_unit", sa.String(length=64), nullable=True),
        sa.Column("reason_code", sa.String(length=40), nullable=True),
        sa.Column("outcome_code", sa.String(length=40), nullable=True),
        sa.Column("reason_text", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referrals.id"], name=op.f("fk_timeline_events_referral_id_referrals")
        ),
        sa.UniqueConstraint("referral_id", "position", name=op.f("uq_timeline_events_referral_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timeline_events")),
    )
    with op.batch_alter_table("timeline_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_timeline_events_referral_id"), ["referral_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("timeline_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_timeline_events_referral_id"))

    op.drop_table("timeline_events")
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notes_referral_id"))

    op.drop_table("notes")
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_index("ix_referrals_sending_unit_created")
        batch_op.drop_index("ix_referrals_receiving_unit_created")

    op.drop_table("referrals")
    op.drop_table("units")
