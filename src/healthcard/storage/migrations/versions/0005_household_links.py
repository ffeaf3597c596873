"""Household proxy links (家庭代理): a guardian resident sees a dependant's vaccinations on the
portal — who established the link, on what evidence, from when until when (by default the
dependant's 18th birthday), who revoked it; one unrevoked link per (guardian, dependant).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import healthcard.storage.tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

LIVE_LINK = sa.text("revoked_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "household_links",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("guardian_id", sa.String(length=32), nullable=False),
        sa.Column("dependant_id", sa.String(length=32), nullable=False),
        sa.Column("relation", sa.String(length=10), nullable=False),
        sa.Column("evidence_kind", sa.String(length=20), nullable=False),
        sa.Column("evidence", sa.String(length=40), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("established_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("established_by", sa.String(length=40), nullable=False),
        sa.Column("institution_code", sa.String(length=22), nullable=True),
        sa.Column("revoked_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=40), nullable=True),
        sa.Column("revoke_reason", sa.String(length=200), nullable=True),
        sa.CheckConstraint("guardian_id <> dependant_id", name=op.f("ck_household_links_not_self")),
        sa.CheckConstraint("valid_until > valid_from", name=op.f("ck_household_links_valid_period")),
        sa.ForeignKeyConstraint(
            ["dependant_id"],
            ["residents.resident_id"],
            name=op.f("fk_household_links_dependant_id_residents"),
        ),
        sa.ForeignKeyConstraint(
            ["guardian_id"],
            ["residents.resident_id"],
            name=op.f("fk_household_links_guardian_id_residents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_household_links")),
    )
    with op.batch_alter_table("household_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_household_links_guardian_id"), ["guardian_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_household_links_dependant_id"), ["dependant_id"], unique=False)
        batch_op.create_index(
            "uq_household_links_live_pair",
            ["guardian_id", "dependant_id"],
            unique=True,
            sqlite_where=LIVE_LINK,
            postgresql_where=LIVE_LINK,
        )


def downgrade() -> None:
    with op.batch_alter_table("household_links", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_household_links_live_pair", sqlite_where=LIVE_LINK, postgresql_where=LIVE_LINK
        )
        batch_op.drop_index(batch_op.f("ix_household_links_dependant_id"))
        batch_op.drop_index(batch_op.f("ix_household_links_guardian_id"))
    op.drop_table("household_links")
