"""reminder campaigns: runs and decisions, contact holds, call ledger, touches in the outbox

Revision ID: 0004_campaigns
Revises: 0003_handoffs
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_campaigns"
down_revision = "0003_handoffs"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "campaign_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("planned_for", TS, nullable=False),
        sa.Column("cadence_version", sa.Integer(), nullable=False),
        sa.Column("contact_rules_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("accounts", sa.Integer(), nullable=False),
        sa.Column("queued", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("not_due", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "campaign_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=True),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=48), nullable=False),
        sa.Column("scheduled_at", TS, nullable=True),
        sa.Column("idempotency_key", sa.String(length=96), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["campaign_runs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_campaign_decisions_run_id", "campaign_decisions", ["run_id"])
    op.create_index("ix_campaign_decisions_account_id", "campaign_decisions", ["account_id"])
    op.create_table(
        "contact_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("released_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_contact_holds_account_id", "contact_holds", ["account_id"])
    op.create_table(
        "call_ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("conversation", sa.Boolean(), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_call_ledger_customer_id", "call_ledger", ["customer_id"])
    op.create_index("ix_call_ledger_at", "call_ledger", ["at"])
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("customer_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("campaign_step", sa.String(length=40), nullable=True))
        batch.create_index("ix_outbox_account_id", ["account_id"])
        batch.create_index("ix_outbox_customer_id", ["customer_id"])
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("preferred_channel", sa.String(length=8), nullable=True))
    # The reminder run reaches a batch's contact points and touches through the customer.
    op.create_index("ix_contact_points_customer_id", "contact_points", ["customer_id"])
    op.create_index("ix_accounts_customer_id", "accounts", ["customer_id"])


def downgrade() -> None:
    op.drop_index("ix_accounts_customer_id", table_name="accounts")
    op.drop_index("ix_contact_points_customer_id", table_name="contact_points")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("preferred_channel")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_customer_id")
        batch.drop_index("ix_outbox_account_id")
        batch.drop_column("campaign_step")
        batch.drop_column("customer_id")
        batch.drop_column("account_id")
    op.drop_table("call_ledger")
    op.drop_table("contact_holds")
    op.drop_table("campaign_decisions")
    op.drop_table("campaign_runs")
