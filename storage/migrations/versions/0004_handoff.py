"""Conversation states for human handoff, dialog state and reply feedback

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 04:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch_op:
        batch_op.add_column(sa.Column("agent", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("handoff_reason", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("handoff_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("dialog_state", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("fallback_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("negative_feedback_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("min_intent_confidence", sa.Float(), nullable=True))
        batch_op.create_index("ix_conversations_status", ["status"])
    # Open conversations were answered by the bot: that state is now called "bot".
    op.execute("UPDATE conversations SET status = 'bot' WHERE status = 'open'")

    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "message_id",
            sa.Integer(),
            sa.ForeignKey("messages.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("message_id", name="uq_feedback_message"),
    )


def downgrade() -> None:
    op.drop_table("feedback")
    op.execute(
        "UPDATE conversations SET status = 'open' WHERE status IN ('bot', 'waiting', 'agent')"
    )
    with op.batch_alter_table("conversations") as batch_op:
        batch_op.drop_index("ix_conversations_status")
        batch_op.drop_column("min_intent_confidence")
        batch_op.drop_column("negative_feedback_count")
        batch_op.drop_column("fallback_count")
        batch_op.drop_column("dialog_state")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("handoff_at")
        batch_op.drop_column("handoff_reason")
        batch_op.drop_column("agent")
