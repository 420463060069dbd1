"""Segments and bulk enrollment: memberships, uploaded lists, dormant contacts, events by time.

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
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("dormant_at", sa.DateTime(timezone=True)))
    op.create_index("ix_events_contact_occurred", "events", ["contact_id", "occurred_at"])
    op.create_table(
        "segment_memberships",
        sa.Column("segment", sa.String(length=200), nullable=False),
        sa.Column("contact_id", sa.String(length=200), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("segment", "contact_id"),
    )
    op.create_table(
        "bulk_list_items",
        sa.Column("list_id", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("list_id", "position"),
    )


def downgrade() -> None:
    op.drop_table("bulk_list_items")
    op.drop_table("segment_memberships")
    op.drop_index("ix_events_contact_occurred", table_name="events")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("dormant_at")
