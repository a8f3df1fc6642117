"""satisfaction surveys: the one question after a resolved conversation, and its answer

Revision ID: 0015_survey
Revises: 0014_billingapi
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_survey"
down_revision = "0014_billingapi"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "satisfaction_surveys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("cause", sa.String(length=12), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("idempotency_key", sa.String(length=96), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("conversation_id"),
    )
    op.create_index("ix_satisfaction_surveys_answered_at", "satisfaction_surveys", ["answered_at"])


def downgrade() -> None:
    op.drop_index("ix_satisfaction_surveys_answered_at", table_name="satisfaction_surveys")
    op.drop_table("satisfaction_surveys")
