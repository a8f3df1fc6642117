"""a do-not-contact hold outlives the case that placed it, and is resolved with an outcome

Revision ID: 0012_holds_hold_outcomes
Revises: 0011_paypage_link_replaced_by
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_holds_hold_outcomes"
down_revision = "0011_paypage_link_replaced_by"
branch_labels = None
depends_on = None

COLUMNS = ("handoff_id", "note", "outcome", "outcome_cents", "resolved_by")


def upgrade() -> None:
    # Plain ADD COLUMNs: no table rebuild on SQLite.
    op.add_column("contact_holds", sa.Column("handoff_id", sa.Integer()))
    op.add_column("contact_holds", sa.Column("note", sa.Text()))
    op.add_column("contact_holds", sa.Column("outcome", sa.String(12)))
    op.add_column("contact_holds", sa.Column("outcome_cents", sa.BigInteger()))
    op.add_column("contact_holds", sa.Column("resolved_by", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("contact_holds") as batch:
        for column in COLUMNS:
            batch.drop_column(column)
