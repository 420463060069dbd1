"""Indexes for provider feedback (lookup by Message-ID) and the metrics scrape.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_messages_provider_message_id", "messages", ["provider_message_id"])
    op.create_index("ix_messages_channel_status", "messages", ["channel", "status"])


def downgrade() -> None:
    op.drop_index("ix_messages_channel_status", table_name="messages")
    op.drop_index("ix_messages_provider_message_id", table_name="messages")
