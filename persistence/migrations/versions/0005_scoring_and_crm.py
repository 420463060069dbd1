"""Lead scoring (scores, their history) and CRM sync (outbox, field state, tasks, inbound).

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column[sa.DateTime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("lifecycle_stage", sa.String(length=40)))
        batch.add_column(sa.Column("crm_id", sa.String(length=100)))
        batch.create_index("ix_contacts_crm_id", ["crm_id"])
    op.create_table(
        "lead_scores",
        sa.Column("contact_id", sa.String(length=200), nullable=False),
        sa.Column("points", sa.Float(), nullable=False),
        _ts("as_of"),
        sa.Column("qualified", sa.Boolean(), nullable=False, server_default=sa.false()),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("contact_id"),
    )
    op.create_table(
        "score_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("event_name", sa.String(length=200), nullable=False),
        sa.Column("rule_points", sa.JSON(), nullable=False),
        sa.Column("delta", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("emitted", sa.String(length=200)),
        _ts("at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("contact_id", "event_id", name="uq_score_changes_event"),
    )
    op.create_index("ix_score_changes_contact_at", "score_changes", ["contact_id", "at"])
    op.create_table(
        "crm_outbox",
        sa.Column("contact_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        _ts("first_changed_at"),
        _ts("changed_at"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(length=2000)),
        sa.PrimaryKeyConstraint("contact_id"),
    )
    op.create_index("ix_crm_outbox_status_changed", "crm_outbox", ["status", "changed_at"])
    op.create_table(
        "crm_field_state",
        sa.Column("contact_id", sa.String(length=200), nullable=False),
        sa.Column("field", sa.String(length=200), nullable=False),
        _ts("updated_at"),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.PrimaryKeyConstraint("contact_id", "field"),
    )
    op.create_table(
        "crm_tasks",
        sa.Column("id", sa.String(length=700), nullable=False),
        sa.Column("contact_id", sa.String(length=200), nullable=False),
        sa.Column("journey", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("body", sa.String(length=10000), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("crm_task_id", sa.String(length=100)),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(length=2000)),
        _ts("created_at"),
        _ts("done_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_crm_tasks_contact_id", "crm_tasks", ["contact_id"])
    op.create_index("ix_crm_tasks_status", "crm_tasks", ["status", "created_at"])
    op.create_table(
        "crm_inbound_events",
        sa.Column("id", sa.String(length=300), nullable=False),
        sa.Column("contact_id", sa.String(length=200)),
        sa.Column("applied", sa.JSON(), nullable=False),
        _ts("received_at"),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("crm_inbound_events")
    op.drop_index("ix_crm_tasks_status", table_name="crm_tasks")
    op.drop_index("ix_crm_tasks_contact_id", table_name="crm_tasks")
    op.drop_table("crm_tasks")
    op.drop_table("crm_field_state")
    op.drop_index("ix_crm_outbox_status_changed", table_name="crm_outbox")
    op.drop_table("crm_outbox")
    op.drop_index("ix_score_changes_contact_at", table_name="score_changes")
    op.drop_table("score_changes")
    op.drop_table("lead_scores")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_index("ix_contacts_crm_id")
        batch.drop_column("crm_id")
        batch.drop_column("lifecycle_stage")
