"""simulated histories: the simulator's runs, and its customers marked as simulated

Revision ID: 0010_simulate_history
Revises: 0009_silence_kept_messages
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_simulate_history"
down_revision = "0009_silence_kept_messages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(
            sa.Column("simulated", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "simulated_histories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("accounts", sa.Integer(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("customer_prefix", sa.String(length=32), nullable=False),
        sa.Column("simulated_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("simulated_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("customer_prefix"),
    )


def downgrade() -> None:
    op.drop_table("simulated_histories")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("simulated")
