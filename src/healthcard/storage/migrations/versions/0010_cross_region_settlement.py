"""Federation: cross-region settlement — a visitor's bill settled by the home pool, one row at
each of the two cities (``cross_region_settlements``), the monthly clearing's source.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import healthcard.storage.tables

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cross_region_settlements",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("counterpart", sa.String(length=4), nullable=False),
        sa.Column("home_city", sa.String(length=4), nullable=False),
        sa.Column("visiting_city", sa.String(length=4), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("home_resident_id", sa.String(length=32), nullable=False),
        sa.Column("settlement_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("encounter_id", sa.BigInteger(), nullable=False),
        sa.Column("institution_code", sa.String(length=22), nullable=False),
        sa.Column("institution_name", sa.String(length=100), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("area_code", sa.String(length=6), nullable=False),
        sa.Column("visit", sa.String(length=10), nullable=False),
        sa.Column("inside_pool", sa.Boolean(), nullable=False),
        sa.Column("referral", sa.Boolean(), nullable=False),
        sa.Column("home_pool", sa.String(length=16), nullable=False),
        sa.Column("visiting_pool", sa.String(length=16), nullable=True),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.Column("eligible_fen", sa.BigInteger(), nullable=False),
        sa.Column("deductible_fen", sa.BigInteger(), nullable=False),
        sa.Column("ratio_percent", sa.Integer(), nullable=False),
        sa.Column("fund_fen", sa.BigInteger(), nullable=False),
        sa.Column("self_fen", sa.BigInteger(), nullable=False),
        sa.Column("owed_fen", sa.BigInteger(), nullable=False),
        sa.Column("capped", sa.Boolean(), nullable=False),
        sa.Column("paid_by", sa.String(length=8), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("settled_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("txn_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["settlement_id"],
            ["settlements.id"],
            name=op.f("fk_cross_region_settlements_settlement_id_settlements"),
        ),
        sa.ForeignKeyConstraint(
            ["txn_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_cross_region_settlements_txn_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cross_region_settlements")),
        sa.UniqueConstraint(
            "side",
            "visiting_city",
            "institution_code",
            "idempotency_key",
            name=op.f("uq_cross_region_settlements_side"),
        ),
    )
    with op.batch_alter_table("cross_region_settlements", schema=None) as batch_op:
        batch_op.create_index("ix_cross_region_settlements_clearing", ["counterpart", "month"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_cross_region_settlements_resident_id"), ["resident_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("cross_region_settlements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cross_region_settlements_resident_id"))
        batch_op.drop_index("ix_cross_region_settlements_clearing")
    op.drop_table("cross_region_settlements")
