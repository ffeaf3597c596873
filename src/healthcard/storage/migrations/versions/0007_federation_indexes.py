"""Federation: the indexes that flow upward — a province's card index (card number → home city,
resident id there, status, version) and record locator (which city holds a visit of whom), and
the national card index (card number → home province and city, status, version).  Every node
has the tables (one codebase); a node uses those of its role.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import healthcard.storage.tables

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "province_cards",
        sa.Column("card_number", sa.String(length=18), nullable=False),
        sa.Column("city_code", sa.String(length=4), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("card_number", name=op.f("pk_province_cards")),
    )
    with op.batch_alter_table("province_cards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_province_cards_city_code"), ["city_code"], unique=False)
    op.create_table(
        "record_locator",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("city_code", sa.String(length=4), nullable=False),
        sa.Column("encounter_id", sa.BigInteger(), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("card_number", sa.String(length=18), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("institution_code", sa.String(length=22), nullable=False),
        sa.Column("received_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_locator")),
        sa.UniqueConstraint("city_code", "encounter_id", name=op.f("uq_record_locator_city_code")),
    )
    with op.batch_alter_table("record_locator", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_record_locator_card_number"), ["card_number"], unique=False)
        batch_op.create_index("ix_record_locator_city_resident", ["city_code", "resident_id"], unique=False)
    op.create_table(
        "national_cards",
        sa.Column("card_number", sa.String(length=18), nullable=False),
        sa.Column("province", sa.String(length=2), nullable=False),
        sa.Column("city_code", sa.String(length=4), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("card_number", name=op.f("pk_national_cards")),
    )
    with op.batch_alter_table("national_cards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_national_cards_province"), ["province"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("national_cards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_national_cards_province"))
    op.drop_table("national_cards")
    with op.batch_alter_table("record_locator", schema=None) as batch_op:
        batch_op.drop_index("ix_record_locator_city_resident")
        batch_op.drop_index(batch_op.f("ix_record_locator_card_number"))
    op.drop_table("record_locator")
    with op.batch_alter_table("province_cards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_province_cards_city_code"))
    op.drop_table("province_cards")
