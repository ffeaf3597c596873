"""Federation: the transactional outbox (messages to other nodes, written in the transaction of
the change they announce, published by the relay) and the consumers' inbox (one row per
processed message and consumer: what makes a consumer idempotent).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import healthcard.storage.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PENDING = sa.text("published_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("msg_id", sa.String(length=128), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("msg_id", name=op.f("uq_outbox_msg_id")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_pending", ["id"], unique=False, sqlite_where=PENDING, postgresql_where=PENDING
        )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=60), nullable=False),
        sa.Column("msg_id", sa.String(length=128), nullable=False),
        sa.Column("processed_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "msg_id", name=op.f("pk_inbox")),
    )


def downgrade() -> None:
    op.drop_table("inbox")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_pending", sqlite_where=PENDING, postgresql_where=PENDING)
    op.drop_table("outbox")
