"""Add model versions, their activations, agent corrections and conversation ratings

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 23:05:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_KIND = sa.Enum("dialog", "intent", "ner", name="modelkind", native_enum=False, length=32)
_STATUS = sa.Enum(
    "training",
    "failed",
    "interrupted",
    "ready",
    "rejected",
    name="modelstatus",
    native_enum=False,
    length=32,
)


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch_op:
        batch_op.add_column(sa.Column("rating", sa.Integer(), nullable=True))
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", _KIND, nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("status", _STATUS, nullable=False),
        sa.Column("base_model", sa.String(length=1024), nullable=False),
        sa.Column("path", sa.String(length=2048), nullable=True),
        sa.Column("run_dir", sa.String(length=2048), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("data_stats", sa.JSON(), nullable=False),
        sa.Column("training_config", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version"),
    )
    op.create_index("ix_model_versions_kind", "model_versions", ["kind"])
    op.create_table(
        "model_activations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", _KIND, nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rolled_back_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_model_activations_kind_id", "model_activations", ["kind", "id"])
    op.create_table(
        "corrections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_corrections_message_id", "corrections", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_corrections_message_id", table_name="corrections")
    op.drop_table("corrections")
    op.drop_index("ix_model_activations_kind_id", table_name="model_activations")
    op.drop_table("model_activations")
    op.drop_index("ix_model_versions_kind", table_name="model_versions")
    op.drop_table("model_versions")
    with op.batch_alter_table("conversations") as batch_op:
        batch_op.drop_column("rating")
