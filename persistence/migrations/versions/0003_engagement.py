"""Engagement: tracked links, delivery and engagement on messages, the engagements log.

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

TIMESTAMPS = ("delivered_at", "opened_at", "first_clicked_at", "bounced_at", "complained_at")


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("email_suppressed", sa.String(length=40)))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("links", sa.JSON(), nullable=False, server_default="[]"))
        for name in TIMESTAMPS:
            batch.add_column(sa.Column(name, sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("clicks", sa.Integer(), nullable=False, server_default="0"))
        batch.create_index("ix_messages_journey", ["journey", "step"])
    with op.batch_alter_table("enrollments") as batch:
        batch.create_index("ix_enrollments_journey_entered", ["journey", "entered_at"])
    op.create_table(
        "engagements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=700), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("source_id", sa.String(length=300), nullable=False),
        sa.Column("url", sa.String(length=2000)),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_id", name="uq_engagements_source"),
    )
    op.create_index("ix_engagements_message", "engagements", ["message_id", "kind"])


def downgrade() -> None:
    op.drop_index("ix_engagements_message", table_name="engagements")
    op.drop_table("engagements")
    with op.batch_alter_table("enrollments") as batch:
        batch.drop_index("ix_enrollments_journey_entered")
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("ix_messages_journey")
        batch.drop_column("clicks")
        for name in TIMESTAMPS:
            batch.drop_column(name)
        batch.drop_column("links")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("email_suppressed")
