"""an attorney's details as the customer gave them (Reg F 1006.6(b)(2)); the times and places
a customer asked us to avoid, per channel

Revision ID: 0016_situations
Revises: 0015_survey
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_situations"
down_revision = "0015_survey"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attorney_representations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "customer_id",
            sa.Integer(),
            sa.ForeignKey("customers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("conversation_id", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("name", sa.String(120)),
        sa.Column("firm", sa.String(160)),
        sa.Column("phone", sa.String(32)),
        sa.Column("email", sa.String(254)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_attorney_representations_customer_id", "attorney_representations", ["customer_id"]
    )
    op.create_table(
        "contact_preferences",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "customer_id",
            sa.Integer(),
            sa.ForeignKey("customers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("start", sa.String(5), nullable=False),
        sa.Column("end", sa.String(5), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("weekdays", sa.Boolean(), nullable=False),
        sa.Column("place", sa.String(16)),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_contact_preferences_customer_id", "contact_preferences", ["customer_id"])


def downgrade() -> None:
    op.drop_index("ix_contact_preferences_customer_id", "contact_preferences")
    op.drop_table("contact_preferences")
    op.drop_index("ix_attorney_representations_customer_id", "attorney_representations")
    op.drop_table("attorney_representations")
