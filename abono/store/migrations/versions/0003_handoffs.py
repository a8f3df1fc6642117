"""handoffs, agents, console sessions, desk events; misunderstood turns on conversations

Revision ID: 0003_handoffs
Revises: 0002_plans
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_handoffs"
down_revision = "0002_plans"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("role", sa.String(length=12), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "agent_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "handoffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("trigger_text", sa.Text(), nullable=True),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("claimed_at", TS, nullable=True),
        sa.Column("proposal", sa.JSON(), nullable=True),
        sa.Column("approved_terms", sa.JSON(), nullable=True),
        sa.Column("approved_by", sa.Integer(), nullable=True),
        sa.Column("approved_at", TS, nullable=True),
        sa.Column("resolution", sa.String(length=12), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("callback_at", TS, nullable=True),
        sa.Column("held_message_ids", sa.JSON(), nullable=False),
        sa.Column("resumed_at", TS, nullable=True),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"]),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"]),
        sa.ForeignKeyConstraint(["approved_by"], ["agents.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.create_index("ix_handoffs_conversation_id", ["conversation_id"], unique=False)
        batch_op.create_index("ix_handoffs_status", ["status"], unique=False)
    op.create_index(
        "uq_handoffs_unresolved",
        "handoffs",
        ["conversation_id"],
        unique=True,
        sqlite_where=sa.text("status != 'resolved'"),
        postgresql_where=sa.text("status != 'resolved'"),
    )
    op.create_table(
        "desk_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=96), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("handoff_id", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("desk_events", schema=None) as batch_op:
        batch_op.create_index("ix_desk_events_handoff_id", ["handoff_id"], unique=False)
        batch_op.create_index("ix_desk_events_status", ["status"], unique=False)
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("misunderstood_turns", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("misunderstood_turns")
    op.drop_table("desk_events")
    op.drop_index("uq_handoffs_unresolved", table_name="handoffs")
    op.drop_table("handoffs")
    op.drop_table("agent_sessions")
    op.drop_table("agents")
