"""the dialogue's state between turns lives on the conversation, not in the engine's slots

Revision ID: 0006_dialogue_state
Revises: 0005_days_past_due
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_dialogue_state"
down_revision = "0005_days_past_due"
branch_labels = None
depends_on = None

COLUMNS = (
    ("awaiting", sa.String(length=32)),
    ("pending_intent", sa.String(length=48)),
    ("pending_text", sa.Text()),
    ("zip_answer", sa.String(length=10)),
    ("payment_amount_cents", sa.BigInteger()),
)


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
        batch.add_column(
            sa.Column("engine_turns", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        for name, _ in COLUMNS:
            batch.drop_column(name)
        batch.drop_column("engine_turns")
