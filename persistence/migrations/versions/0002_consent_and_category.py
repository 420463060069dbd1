"""Per-channel consent on contacts, message category.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        for channel in ("email", "sms", "push"):
            batch.add_column(
                sa.Column(
                    f"{channel}_consent", sa.Boolean(), nullable=False, server_default=sa.true()
                )
            )
        batch.add_column(sa.Column("consent_updated_at", sa.DateTime(timezone=True)))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(
            sa.Column("category", sa.String(length=20), nullable=False, server_default="marketing")
        )
        batch.create_index("ix_messages_caps", ["contact_id", "channel", "category", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("ix_messages_caps")
        batch.drop_column("category")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("consent_updated_at")
        for channel in ("email", "sms", "push"):
            batch.drop_column(f"{channel}_consent")
