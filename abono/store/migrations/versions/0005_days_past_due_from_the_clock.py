"""days past due are counted from the due date and the clock, not kept from the import

Revision ID: 0005_days_past_due
Revises: 0004_campaigns
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_days_past_due"
down_revision = "0004_campaigns"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("days_past_due")


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("days_past_due", sa.Integer(), nullable=False, server_default="0"))
