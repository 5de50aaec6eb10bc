"""Routing rule sets, the routing decision on referrals, the webhook outbox, deadline
notices, and units' webhook switch and sealed signing secret.

A deployment that already has units keeps routing as before: rule-set version 1 is made
from what the code did until now (each receiving unit's districts, first unit by id
winning, everything else to the unit ``intake``), when an ``intake`` receiving unit exists.

Revision ID: 0004
Revises: 0003
"""

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("webhook_enabled", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("webhook_secret", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("webhook_secret_kek_id", sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_units_webhook_secret_kek_id"), ["webhook_secret_kek_id"], unique=False
        )
    with op.batch_alter_table("units", schema=None) as batch_op:
        # The default was only for rows that existed; the model sets it from now on.
        batch_op.alter_column("webhook_enabled", server_default=None)

    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("routing_rule_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("routing_ruleset_version", sa.Integer(), nullable=True))
        batch_op.create_index("ix_referrals_status_due", ["status", "due_at"], unique=False)

    with op.batch_alter_table("timeline_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rule_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("ruleset_version", sa.Integer(), nullable=True))

    op.create_table(
        "routing_rulesets",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=500), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_routing_rulesets")),
    )

    op.create_table(
        "outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=40), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim_token", sa.Uuid(), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_outbox_unit_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_due", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_outbox_created", ["created_at", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_referral_id"), ["referral_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "deadline_notices",
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_deadline_notices_referral_id_referrals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "referral_id", "due_at", "unit_id", name=op.f("pk_deadline_notices")
        ),
    )

    _rules_as_routed_until_now()


def _rules_as_routed_until_now() -> None:
    bind = op.get_bind()
    units = bind.execute(sa.text("SELECT id, kind, districts FROM units ORDER BY id")).all()
    receivers = [(unit_id, _codes(districts)) for unit_id, kind, districts in units
                 if kind == "receiver"]  # fmt: skip
    if not any(unit_id == "intake" for unit_id, _ in receivers):
        return  # nothing to route to, as before: submitting answered 409 until set up
    rules: list[dict[str, Any]] = []
    taken: set[str] = set()
    for unit_id, districts in receivers:
        mine = sorted(set(districts) - taken)
        if mine:
            taken.update(mine)
            rule = {"position": 10 * (len(rules) + 1), "unit": unit_id}
            rules.append({"id": str(uuid.uuid4()), **rule, "match": {"districts": mine}})
    rules.append({"id": str(uuid.uuid4()), "position": 100_000, "unit": "intake", "match": {}})
    now = datetime.now(UTC)
    rulesets = sa.table(
        "routing_rulesets",
        sa.column("version", sa.Integer()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("created_by", sa.String()),
        sa.column("rules", sa.JSON()),
    )
    op.bulk_insert(
        rulesets,
        [
            {
                "version": 1,
                # The application stores naive UTC on SQLite (referrals/db/base.py).
                "created_at": now.replace(tzinfo=None) if bind.dialect.name == "sqlite" else now,
                "created_by": "urn:referrals:migration|0004",
                "rules": rules,
            }
        ],
    )


def _codes(value: object) -> list[str]:
    loaded = json.loads(value) if isinstance(value, str) else value
    return [str(code) for code in loaded or []]


def downgrade() -> None:
    # Rule-set versions explain past routing decisions and the outbox holds undelivered
    # notifications: dropping them would lose both.  Restore a backup instead.
    raise NotImplementedError("revision 0004 is not reversible: restore a backup instead")
