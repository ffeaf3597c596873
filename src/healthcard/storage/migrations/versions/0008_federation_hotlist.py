"""Federation: the hot list flowing downward — a city's copy of the chips the nation announced on
or off the hot list (``federated_hotlist``, one row per chip, newest version wins), and the chip
of each card's newest event in the national card index (the deltas are per chip).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import healthcard.storage.tables

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "federated_hotlist",
        sa.Column("chip_serial", sa.String(length=16), nullable=False),
        sa.Column("card_number", sa.String(length=18), nullable=False),
        sa.Column("province", sa.String(length=2), nullable=False),
        sa.Column("city_code", sa.String(length=4), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("listed", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=12), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chip_serial", name=op.f("pk_federated_hotlist")),
    )
    with op.batch_alter_table("federated_hotlist", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_federated_hotlist_card_number"), ["card_number"], unique=False)
    with op.batch_alter_table("national_cards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chip_serial", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("national_cards", schema=None) as batch_op:
        batch_op.drop_column("chip_serial")
    with op.batch_alter_table("federated_hotlist", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_federated_hotlist_card_number"))
    op.drop_table("federated_hotlist")
