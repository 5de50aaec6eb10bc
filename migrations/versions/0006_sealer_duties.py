"""Separate duties for the audit sealer: flags on seals, checkpoints only at sealed positions;
refusals of unverified actors counted per minute.

``audit_seals.flag`` is written by the sealer when an event's ``recorded_at`` is not close
to the moment the sealer first saw it (back-dated or future-dated); the flag is hashed with
the event (only when set, so every existing row verifies as before).  On PostgreSQL a
trigger refuses a checkpoint whose seq and head are not a sealed position of the chain, for
every role: a checkpoint planted at seq 2**31-1 can no longer stop all later ones.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_seals", sa.Column("flag", sa.String(length=16), nullable=True))
    op.create_table(
        "audit_refusal_tallies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claim_key", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["audit_events.id"],
            name=op.f("fk_audit_refusal_tallies_event_id_audit_events"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_refusal_tallies")),
        sa.UniqueConstraint(
            "window_start", "claim_key", name=op.f("uq_audit_refusal_tallies_window_start")
        ),
        sa.UniqueConstraint("event_id", name=op.f("uq_audit_refusal_tallies_event_id")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION referrals_audit_checkpoint_sealed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF NOT EXISTS (
                SELECT 1 FROM audit_seals WHERE seq = NEW.seq AND hash = NEW.head
            ) THEN
                RAISE EXCEPTION 'audit checkpoint refused: seq % is not a sealed position',
                    NEW.seq;
            END IF;
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_checkpoints_sealed_only BEFORE INSERT ON audit_checkpoints "
        "FOR EACH ROW EXECUTE FUNCTION referrals_audit_checkpoint_sealed()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_checkpoints_sealed_only ON audit_checkpoints")
        op.execute("DROP FUNCTION referrals_audit_checkpoint_sealed()")
    op.drop_table("audit_refusal_tallies")
    with op.batch_alter_table("audit_seals") as batch:
        batch.drop_column("flag")
