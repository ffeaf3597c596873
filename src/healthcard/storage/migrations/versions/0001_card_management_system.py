"""The card management system: institutions, collection points, operators, residents,
applications, cards and their history, counters, the hot list.

Revision ID: 0001
Revises: (none: the first revision)
Create Date: 2026-11-24 03:33:12.709282
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import healthcard.storage.tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "counters",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_counters")),
    )
    op.create_table(
        "hotlist_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("province", sa.String(length=2), nullable=False),
        sa.Column("chip_serial", sa.String(length=16), nullable=False),
        sa.Column("card_number", sa.String(length=18), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=12), nullable=False),
        sa.Column("listed_version", sa.Integer(), nullable=False),
        sa.Column("listed_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("removed_version", sa.Integer(), nullable=True),
        sa.Column("removed_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hotlist_entries")),
    )
    with op.batch_alter_table("hotlist_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hotlist_entries_chip_serial"), ["chip_serial"], unique=False)
        batch_op.create_index("ix_hotlist_entries_listed", ["province", "listed_version"], unique=False)
        batch_op.create_index("ix_hotlist_entries_removed", ["province", "removed_version"], unique=False)
        batch_op.create_index(batch_op.f("ix_hotlist_entries_resident_id"), ["resident_id"], unique=False)

    op.create_table(
        "hotlist_versions",
        sa.Column("province", sa.String(length=2), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("province", name=op.f("pk_hotlist_versions")),
    )
    op.create_table(
        "institutions",
        sa.Column("code", sa.String(length=22), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("area_code", sa.String(length=6), nullable=False),
        sa.Column("issues_cards", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_institutions")),
    )
    op.create_table(
        "residents",
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("id_type", sa.String(length=2), nullable=False),
        sa.Column("id_number", sa.String(length=18), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("sex", sa.Integer(), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("created_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("resident_id", name=op.f("pk_residents")),
        sa.UniqueConstraint("id_type", "id_number", name=op.f("uq_residents_id_type")),
    )
    op.create_table(
        "collection_points",
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("area_code", sa.String(length=6), nullable=False),
        sa.Column("institution_code", sa.String(length=22), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_code"],
            ["institutions.code"],
            name=op.f("fk_collection_points_institution_code_institutions"),
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_collection_points")),
    )
    op.create_table(
        "operators",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("role", sa.String(length=24), nullable=False),
        sa.Column("institution_code", sa.String(length=22), nullable=False),
        sa.Column("collection_point_code", sa.String(length=20), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_point_code"],
            ["collection_points.code"],
            name=op.f("fk_operators_collection_point_code_collection_points"),
        ),
        sa.ForeignKeyConstraint(
            ["institution_code"],
            ["institutions.code"],
            name=op.f("fk_operators_institution_code_institutions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_batches_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    op.create_table(
        "applications",
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("card_number", sa.String(length=18), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("province", sa.String(length=2), nullable=False),
        sa.Column("collection_point_code", sa.String(length=20), nullable=True),
        sa.Column("submitted_by", sa.String(length=40), nullable=False),
        sa.Column("submitted_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=40), nullable=True),
        sa.Column("decided_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("replaces_card_id", sa.Integer(), nullable=True),
        sa.Column("batch_id", sa.String(length=64), nullable=True),
        sa.Column("batch_row", sa.Integer(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], name=op.f("fk_applications_batch_id_batches")),
        sa.ForeignKeyConstraint(
            ["collection_point_code"],
            ["collection_points.code"],
            name=op.f("fk_applications_collection_point_code_collection_points"),
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["operators.id"], name=op.f("fk_applications_decided_by_operators")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.resident_id"], name=op.f("fk_applications_resident_id_residents")
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by"], ["operators.id"], name=op.f("fk_applications_submitted_by_operators")
        ),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_applications")),
        sa.UniqueConstraint("batch_id", "batch_row", name=op.f("uq_applications_batch_id")),
    )
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_applications_card_number"), ["card_number"], unique=False)
        batch_op.create_index(batch_op.f("ix_applications_resident_id"), ["resident_id"], unique=False)
        batch_op.create_index(
            "uq_applications_open_card_number",
            ["card_number"],
            unique=True,
            sqlite_where=sa.text("status IN ('SUBMITTED', 'APPROVED')"),
            postgresql_where=sa.text("status IN ('SUBMITTED', 'APPROVED')"),
        )

    op.create_table(
        "cards",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("card_number", sa.String(length=18), nullable=False),
        sa.Column("chip_serial", sa.String(length=16), nullable=False),
        sa.Column("issue_serial", sa.String(length=10), nullable=False),
        sa.Column("issuer_code", sa.String(length=22), nullable=False),
        sa.Column("province", sa.String(length=2), nullable=False),
        sa.Column("city_code", sa.String(length=6), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("algorithm", sa.String(length=4), nullable=False),
        sa.Column("profile", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("application_number", sa.String(length=20), nullable=False),
        sa.Column("replaces_card_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("issued_by", sa.String(length=40), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("expiry_date", sa.Date(), nullable=False),
        sa.Column("created_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_number"],
            ["applications.number"],
            name=op.f("fk_cards_application_number_applications"),
        ),
        sa.ForeignKeyConstraint(["issued_by"], ["operators.id"], name=op.f("fk_cards_issued_by_operators")),
        sa.ForeignKeyConstraint(
            ["replaces_card_id"], ["cards.id"], name=op.f("fk_cards_replaces_card_id_cards")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.resident_id"], name=op.f("fk_cards_resident_id_residents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cards")),
        sa.UniqueConstraint("chip_serial", name=op.f("uq_cards_chip_serial")),
        sa.UniqueConstraint("issuer_code", "issue_serial", name=op.f("uq_cards_issuer_code")),
    )
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cards_card_number"), ["card_number"], unique=False)
        batch_op.create_index(batch_op.f("ix_cards_resident_id"), ["resident_id"], unique=False)
        batch_op.create_index(
            "uq_cards_live_card_number",
            ["card_number"],
            unique=True,
            sqlite_where=sa.text("status IN ('PERSONALISING', 'ISSUED', 'ACTIVE', 'LOST')"),
            postgresql_where=sa.text("status IN ('PERSONALISING', 'ISSUED', 'ACTIVE', 'LOST')"),
        )

    op.create_table(
        "card_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("card_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("card_number", sa.String(length=18), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("operator_id", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"], name=op.f("fk_card_events_card_id_cards")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_events")),
    )
    with op.batch_alter_table("card_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_card_events_card_id"), ["card_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_card_events_resident_id"), ["resident_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("card_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_card_events_resident_id"))
        batch_op.drop_index(batch_op.f("ix_card_events_card_id"))

    op.drop_table("card_events")
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_cards_live_card_number",
            sqlite_where=sa.text("status IN ('PERSONALISING', 'ISSUED', 'ACTIVE', 'LOST')"),
            postgresql_where=sa.text("status IN ('PERSONALISING', 'ISSUED', 'ACTIVE', 'LOST')"),
        )
        batch_op.drop_index(batch_op.f("ix_cards_resident_id"))
        batch_op.drop_index(batch_op.f("ix_cards_card_number"))

    op.drop_table("cards")
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_applications_open_card_number",
            sqlite_where=sa.text("status IN ('SUBMITTED', 'APPROVED')"),
            postgresql_where=sa.text("status IN ('SUBMITTED', 'APPROVED')"),
        )
        batch_op.drop_index(batch_op.f("ix_applications_resident_id"))
        batch_op.drop_index(batch_op.f("ix_applications_card_number"))

    op.drop_table("applications")
    op.drop_table("batches")
    op.drop_table("operators")
    op.drop_table("collection_points")
    op.drop_table("residents")
    op.drop_table("institutions")
    op.drop_table("hotlist_versions")
    with op.batch_alter_table("hotlist_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hotlist_entries_resident_id"))
        batch_op.drop_index("ix_hotlist_entries_removed")
        batch_op.drop_index("ix_hotlist_entries_listed")
        batch_op.drop_index(batch_op.f("ix_hotlist_entries_chip_serial"))

    op.drop_table("hotlist_entries")
    op.drop_table("counters")
