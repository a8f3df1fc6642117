"""console sign-ins are throttled in the store, per username and per client address

Revision ID: 0008_sign_in_throttles
Revises: 0007_payment_intents_closed
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_sign_in_throttles"
down_revision = "0007_payment_intents_closed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_throttles",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "subject"),
    )


def downgrade() -> None:
    op.drop_table("sign_in_throttles")
