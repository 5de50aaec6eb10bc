"""Seal personal fields: envelope encryption, blind index, erasure.

Every personal value moves from plaintext to AES-256-GCM ciphertext under a new data
key per referral, wrapped by the current KEK.  Existing rows are converted in place
(the data migration), so a database created by revision 0001 upgrades without loss.
The keys come from the running configuration: ``referrals db upgrade`` hands its vault
to this migration.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFERRAL_FIELDS = (
    "subject_name",
    "personal_number",
    "birth_date",
    "phone",
    "guardian_name",
    "guardian_phone",
    "narrative",
    "place_met",
)
# (table, column) of the other personal fields, sealed with their referral's data key.
CHILD_FIELDS = (("notes", "text"), ("timeline_events", "reason_text"))


def upgrade() -> None:
    connection = op.get_bind()
    vault = context.config.attributes.get("vault")
    has_rows = connection.execute(sa.text("SELECT 1 FROM referrals LIMIT 1")).first() is not None
    # Before any DDL: SQLite does not roll DDL back, and a half-migrated schema could not
    # be upgraded again.
    if has_rows and vault is None:
        raise RuntimeError(
            "existing referrals must be encrypted: run this upgrade with `referrals db upgrade`"
        )
    if has_rows and connection.dialect.name == "sqlite":
        # Zero freed pages, so the rebuilt tables leave no plaintext behind in the file.
        connection.exec_driver_sql("PRAGMA secure_delete = ON")

    with op.batch_alter_table("referrals") as batch:
        batch.add_column(sa.Column("dek_wrapped", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("kek_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("personal_number_index", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
        for name in REFERRAL_FIELDS:
            batch.add_column(sa.Column(f"{name}_sealed", sa.LargeBinary(), nullable=True))
        batch.create_index(batch.f("ix_referrals_kek_id"), ["kek_id"], unique=False)
        batch.create_index(
            batch.f("ix_referrals_personal_number_index"), ["personal_number_index"], unique=False
        )
    for table, column in CHILD_FIELDS:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column(f"{column}_sealed", sa.LargeBinary(), nullable=True))

    if has_rows:
        _seal_existing_rows(connection, vault)

    with op.batch_alter_table("referrals") as batch:
        for name in REFERRAL_FIELDS:
            batch.drop_column(name)
    with op.batch_alter_table("referrals") as batch:
        for name in REFERRAL_FIELDS:
            batch.alter_column(f"{name}_sealed", new_column_name=name)
    for table, column in CHILD_FIELDS:
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
        with op.batch_alter_table(table) as batch:
            batch.alter_column(f"{column}_sealed", new_column_name=column)

    if has_rows:
        # On PostgreSQL, DROP COLUMN only hides a column and UPDATE leaves the old row
        # versions behind: these tables must be rewritten so their files hold no
        # plaintext.  `referrals db upgrade` does it once the upgrade has committed
        # (VACUUM cannot run inside it, and must not split it).
        context.config.attributes.setdefault("rewrite_tables", []).extend(
            ["referrals", "notes", "timeline_events"]
        )


def downgrade() -> None:
    # Going back would mean writing every personal field in plaintext again.
    raise NotImplementedError("revision 0002 is not reversible: it would decrypt personal data")


def _seal_existing_rows(connection: sa.Connection, vault: Any) -> None:
    metadata = sa.MetaData()
    referrals = sa.Table(
        "referrals",
        metadata,
        sa.Column("id", sa.Uuid()),
        *(sa.Column(name, sa.String()) for name in REFERRAL_FIELDS),
        *(sa.Column(f"{name}_sealed", sa.LargeBinary()) for name in REFERRAL_FIELDS),
        sa.Column("dek_wrapped", sa.LargeBinary()),
        sa.Column("kek_id", sa.String()),
        sa.Column("personal_number_index", sa.String()),
    )
    children = {
        table: sa.Table(
            table,
            metadata,
            sa.Column("id", sa.Uuid()),
            sa.Column("referral_id", sa.Uuid()),
            sa.Column(column, sa.String()),
            sa.Column(f"{column}_sealed", sa.LargeBinary()),
        )
        for table, column in CHILD_FIELDS
    }
    for row in connection.execute(sa.select(referrals)).mappings().all():
        referral_id = row["id"]
        sealer = vault.new_sealer_for_id(str(referral_id))
        values = {
            f"{name}_sealed": sealer.seal("referrals", referral_id, name, row[name])
            for name in REFERRAL_FIELDS
        }
        number = row["personal_number"]
        values |= {
            "dek_wrapped": sealer.wrapped,
            "kek_id": sealer.kek_id,
            "personal_number_index": vault.personal_number_index(number) if number else None,
        }
        connection.execute(referrals.update().where(referrals.c.id == referral_id).values(values))
        for table, column in CHILD_FIELDS:
            child = children[table]
            for record in connection.execute(
                sa.select(child).where(child.c.referral_id == referral_id)
            ).mappings():
                sealed = sealer.seal(table, record["id"], column, record[column])
                connection.execute(
                    child.update()
                    .where(child.c.id == record["id"])
                    .values({f"{column}_sealed": sealed})
                )
