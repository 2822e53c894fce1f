"""Store NLU results on messages and scope model versions by language

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 02:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch_op:
        batch_op.add_column(sa.Column("intent", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("intent_confidence", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("out_of_scope", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("entities", sa.JSON(), nullable=True))
        batch_op.create_index("ix_messages_intent", ["intent"])
    with op.batch_alter_table("model_versions") as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=16), nullable=True))
    with op.batch_alter_table("model_activations") as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_activations") as batch_op:
        batch_op.drop_column("language")
    with op.batch_alter_table("model_versions") as batch_op:
        batch_op.drop_column("language")
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_index("ix_messages_intent")
        batch_op.drop_column("entities")
        batch_op.drop_column("out_of_scope")
        batch_op.drop_column("intent_confidence")
        batch_op.drop_column("intent")
