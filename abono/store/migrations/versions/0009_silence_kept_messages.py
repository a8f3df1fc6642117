"""an inbound message the engine did not answer in its turn is kept, to be answered later

Revision ID: 0009_silence_kept_messages
Revises: 0008_sign_in_throttles
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_silence_kept_messages"
down_revision = "0008_sign_in_throttles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no table rebuild on SQLite: the message log can be large).
    op.add_column("messages", sa.Column("engine_retry_at", sa.DateTime(timezone=True)))
    op.create_index("ix_messages_engine_retry_at", "messages", ["engine_retry_at"])


def downgrade() -> None:
    op.drop_index("ix_messages_engine_retry_at", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("engine_retry_at")
