"""The sealer's work queue: ``audit_pending`` names every event not sealed yet.

Until now each sealer round found its work by anti-joining the whole trail against the
seals, a cost that grew with the trail.  A trigger on ``audit_events`` now adds each new
event's id (and its ``recorded_at``, the sealer's order) to ``audit_pending`` in the same
transaction as the event; the sealer reads the oldest pending ids through the index and
deletes them in the transaction that seals them, so a round costs O(new events).

The queue has no foreign key to ``audit_events``: one would make a TRUNCATE of the
events fail on the key before the append-only trigger refuses it by name (the sealer reads
the queue joined to the events, so an entry naming no event is never sealed).  The queue
is not evidence: the chain is.  The app role may only INSERT into it (through
the trigger), the sealer may read and DELETE; the verifier still counts unsealed events
by the anti-join, so an event whose queue row went missing shows as pending there.
Existing unsealed events are queued here once.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "audit_pending"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_audit_pending")),
    )
    op.create_index("ix_audit_pending_order", TABLE, ["recorded_at", "event_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION referrals_audit_enqueue() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO audit_pending (event_id, recorded_at) VALUES (NEW.id, NEW.recorded_at);
                RETURN NULL;
            END
            $$
            """
        )
        op.execute(
            "CREATE TRIGGER audit_events_enqueue AFTER INSERT ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION referrals_audit_enqueue()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_events_enqueue AFTER INSERT ON audit_events "
            "BEGIN INSERT INTO audit_pending (event_id, recorded_at) "
            "VALUES (NEW.id, NEW.recorded_at); END"
        )
    op.execute(
        "INSERT INTO audit_pending (event_id, recorded_at) "
        "SELECT e.id, e.recorded_at FROM audit_events e "
        "LEFT JOIN audit_seals s ON s.event_id = e.id WHERE s.seq IS NULL"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_events_enqueue ON audit_events")
        op.execute("DROP FUNCTION referrals_audit_enqueue()")
    else:
        op.execute("DROP TRIGGER audit_events_enqueue")
    op.drop_index("ix_audit_pending_order", table_name=TABLE)
    op.drop_table(TABLE)
