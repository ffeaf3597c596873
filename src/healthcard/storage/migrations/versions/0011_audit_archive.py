"""Audit retention: archived segments of the audit log (``audit_archives``) and, per segment,
the part of each chain it holds (``audit_archive_chains``: first/last seq, the checkpoint hash,
the byte range of the chain's gzip member) — healthcard.platform.auditarchive.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import healthcard.storage.tables

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_archives",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("before", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("chains", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_archives")),
        sa.UniqueConstraint("segment", name=op.f("uq_audit_archives_segment")),
    )
    op.create_table(
        "audit_archive_chains",
        sa.Column("archive_id", sa.Integer(), nullable=False),
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("first_seq", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["archive_id"],
            ["audit_archives.id"],
            name=op.f("fk_audit_archive_chains_archive_id_audit_archives"),
        ),
        sa.PrimaryKeyConstraint("archive_id", "chain", name=op.f("pk_audit_archive_chains")),
    )
    with op.batch_alter_table("audit_archive_chains", schema=None) as batch_op:
        batch_op.create_index("ix_audit_archive_chains_chain", ["chain", "last_seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_archive_chains", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_archive_chains_chain")
    op.drop_table("audit_archive_chains")
    op.drop_table("audit_archives")
