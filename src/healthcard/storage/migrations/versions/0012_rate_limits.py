"""Rate limits shared by a node's workers (``rate_limits``: one fixed window per bucket — a
client address's logins, its terminal challenges) and the access tokens a web logout ended
before their expiry (``revoked_tokens``: their SHA-256) — healthcard.platform.ratelimit.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import healthcard.storage.tables

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("bucket", sa.String(length=160), nullable=False),
        sa.Column("window_start", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name=op.f("pk_rate_limits")),
    )
    op.create_table(
        "revoked_tokens",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("expires_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_revoked_tokens")),
    )
    with op.batch_alter_table("revoked_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_revoked_tokens_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("revoked_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_revoked_tokens_expires_at"))
    op.drop_table("revoked_tokens")
    op.drop_table("rate_limits")
