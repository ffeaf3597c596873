"""Federation: cross-region care — at a visited city, ``visitors`` (the local person kept for a
resident of another city, and where that person is at home); at a home city,
``visiting_institutions`` (institutions of other cities that read or wrote for its residents,
so "who looked" can name them) and ``remote_visits`` (the pointer of each visit made elsewhere).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import healthcard.storage.tables

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "visitors",
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("card_number", sa.String(length=18), nullable=False),
        sa.Column("home_province", sa.String(length=2), nullable=False),
        sa.Column("home_city", sa.String(length=4), nullable=False),
        sa.Column("home_resident_id", sa.String(length=32), nullable=False),
        sa.Column("first_seen_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.resident_id"], name=op.f("fk_visitors_resident_id_residents")
        ),
        sa.PrimaryKeyConstraint("resident_id", name=op.f("pk_visitors")),
        sa.UniqueConstraint("home_city", "home_resident_id", name=op.f("uq_visitors_home_city")),
    )
    with op.batch_alter_table("visitors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_visitors_card_number"), ["card_number"], unique=False)
    op.create_table(
        "visiting_institutions",
        sa.Column("code", sa.String(length=22), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("city_code", sa.String(length=4), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=True),
        sa.Column("area_code", sa.String(length=6), nullable=True),
        sa.Column("first_seen_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_visiting_institutions")),
    )
    op.create_table(
        "remote_visits",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("city_code", sa.String(length=4), nullable=False),
        sa.Column("encounter_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("institution_code", sa.String(length=22), nullable=False),
        sa.Column("institution_name", sa.String(length=100), nullable=False),
        sa.Column("received_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remote_visits")),
        sa.UniqueConstraint("city_code", "encounter_id", name=op.f("uq_remote_visits_city_code")),
    )
    with op.batch_alter_table("remote_visits", schema=None) as batch_op:
        batch_op.create_index("ix_remote_visits_resident_day", ["resident_id", "day"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("remote_visits", schema=None) as batch_op:
        batch_op.drop_index("ix_remote_visits_resident_day")
    op.drop_table("remote_visits")
    op.drop_table("visiting_institutions")
    with op.batch_alter_table("visitors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_visitors_card_number"))
    op.drop_table("visitors")
