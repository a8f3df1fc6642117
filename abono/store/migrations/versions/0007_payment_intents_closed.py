"""a link remembers that its PaymentIntent was closed at Stripe (canceled, or found paid)

An expired or replaced link's intent is canceled by the follow-up sweep; this column is what
the sweep has already done, so it asks Stripe once per link.

Revision ID: 0007_payment_intents_closed
Revises: 0006_dialogue_state
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_payment_intents_closed"
down_revision = "0006_dialogue_state"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payment_links") as batch:
        batch.add_column(
            sa.Column("intent_closed_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("payment_links") as batch:
        batch.drop_column("intent_closed_at")
