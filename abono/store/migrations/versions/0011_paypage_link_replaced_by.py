"""a payment link replaced by a fresh one after a decline remembers which one replaced it

Revision ID: 0011_paypage_link_replaced_by
Revises: 0010_simulate_history
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_paypage_link_replaced_by"
down_revision = "0010_simulate_history"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: the older page points to the newer link, and paying the older one
    # closes the newer (abono.payments.stripe_events).
    op.add_column("payment_links", sa.Column("replaced_by_id", sa.Integer()))


def downgrade() -> None:
    with op.batch_alter_table("payment_links") as batch:
        batch.drop_column("replaced_by_id")
