"""The regional health platform: the MPI's identifiers, review queue and merges; health
archives, encounters, diagnoses, observations, prescriptions, procedures, allergies and
immunizations; accounts, terminals, card uses, presence grants, hidden categories,
notifications; the hash-chained audit log.  Institutions gain their level, residents their
area, pinyin name and merge link.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import healthcard.storage.tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "allergies",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("allergen", sa.String(length=20), nullable=False),
        sa.Column("reaction", sa.String(length=100), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=True),
        sa.Column("recorded_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allergies")),
        sa.UniqueConstraint("resident_id", "allergen", name=op.f("uq_allergies_resident_id")),
    )
    with op.batch_alter_table("allergies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_allergies_resident_id"), ["resident_id"], unique=False)

    op.create_table(
        "audit_heads",
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_audit_heads")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=40), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("institution_code", sa.String(length=22), nullable=True),
        sa.Column("resident_id", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=12), nullable=False),
        sa.Column("what", sa.String(length=60), nullable=False),
        sa.Column("why", sa.String(length=200), nullable=False),
        sa.Column("carrier", sa.String(length=8), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("chain", "seq", name=op.f("uq_audit_log_chain")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_resident_at", ["resident_id", "at"], unique=False)

    op.create_table(
        "card_uses",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("card_number", sa.String(length=18), nullable=False),
        sa.Column("chip_serial", sa.String(length=16), nullable=False),
        sa.Column("institution_code", sa.String(length=22), nullable=False),
        sa.Column("terminal_id", sa.String(length=40), nullable=False),
        sa.Column("terminal_kind", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_uses")),
    )
    with op.batch_alter_table("card_uses", schema=None) as batch_op:
        batch_op.create_index("ix_card_uses_resident_at", ["resident_id", "at"], unique=False)

    op.create_table(
        "hidden_categories",
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=12), nullable=False),
        sa.Column("hidden_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("resident_id", "category", name=op.f("pk_hidden_categories")),
    )
    op.create_table(
        "mpi_candidates",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.String(length=22), nullable=False),
        sa.Column("local_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("sex", sa.Integer(), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("area_code", sa.String(length=6), nullable=True),
        sa.Column("id_number", sa.String(length=18), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("matches", sa.JSON(), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=True),
        sa.Column("received_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=40), nullable=True),
        sa.Column("decided_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mpi_candidates")),
        sa.UniqueConstraint("source", "local_id", name=op.f("uq_mpi_candidates_source")),
    )
    with op.batch_alter_table("mpi_candidates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mpi_candidates_resident_id"), ["resident_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_mpi_candidates_status"), ["status"], unique=False)

    op.create_table(
        "mpi_merges",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("source_resident_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("actor", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mpi_merges")),
    )
    with op.batch_alter_table("mpi_merges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mpi_merges_resident_id"), ["resident_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_mpi_merges_source_resident_id"), ["source_resident_id"], unique=False
        )

    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("message", sa.String(length=400), nullable=False),
        sa.Column("at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("read_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_resident_at", ["resident_id", "at"], unique=False)

    op.create_table(
        "presence_grants",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("institution_code", sa.String(length=22), nullable=False),
        sa.Column("card_use_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("granted_to", sa.String(length=40), nullable=True),
        sa.Column("why", sa.String(length=200), nullable=True),
        sa.Column("granted_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_presence_grants")),
    )
    with op.batch_alter_table("presence_grants", schema=None) as batch_op:
        batch_op.create_index(
            "ix_presence_grants_resident_institution", ["resident_id", "institution_code"], unique=False
        )

    op.create_table(
        "accounts",
        sa.Column("username", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("institution_code", sa.String(length=22), nullable=True),
        sa.Column("area_code", sa.String(length=6), nullable=True),
        sa.Column("resident_id", sa.String(length=32), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("locked_until", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_code"],
            ["institutions.code"],
            name=op.f("fk_accounts_institution_code_institutions"),
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.resident_id"], name=op.f("fk_accounts_resident_id_residents")
        ),
        sa.PrimaryKeyConstraint("username", name=op.f("pk_accounts")),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_accounts_resident_id"), ["resident_id"], unique=False)

    op.create_table(
        "encounters",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("institution_code", sa.String(length=22), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("number", sa.String(length=18), nullable=False),
        sa.Column("department", sa.String(length=50), nullable=False),
        sa.Column("department_code", sa.String(length=10), nullable=True),
        sa.Column("clinician", sa.String(length=40), nullable=True),
        sa.Column("category", sa.String(length=12), nullable=False),
        sa.Column("card_number", sa.String(length=18), nullable=True),
        sa.Column("carrier", sa.String(length=8), nullable=False),
        sa.Column("payment_method", sa.String(length=2), nullable=True),
        sa.Column("started_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("upload_key", sa.String(length=64), nullable=True),
        sa.Column("card_slot", sa.Integer(), nullable=True),
        sa.Column("fees", sa.JSON(), nullable=False),
        sa.Column("created_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_code"],
            ["institutions.code"],
            name=op.f("fk_encounters_institution_code_institutions"),
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.resident_id"], name=op.f("fk_encounters_resident_id_residents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_encounters")),
        sa.UniqueConstraint("institution_code", "upload_key", name=op.f("uq_encounters_institution_code")),
    )
    with op.batch_alter_table("encounters", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_encounters_institution_code"), ["institution_code"], unique=False
        )
        batch_op.create_index("ix_encounters_resident_started", ["resident_id", "started_at"], unique=False)

    op.create_table(
        "health_archives",
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("archive_number", sa.String(length=17), nullable=True),
        sa.Column("abo", sa.Integer(), nullable=True),
        sa.Column("rh", sa.String(length=1), nullable=True),
        sa.Column("alerts", sa.JSON(), nullable=False),
        sa.Column("other_alert", sa.String(length=80), nullable=False),
        sa.Column("psychiatric", sa.Boolean(), nullable=True),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("family_history", sa.JSON(), nullable=False),
        sa.Column("created_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.resident_id"], name=op.f("fk_health_archives_resident_id_residents")
        ),
        sa.PrimaryKeyConstraint("resident_id", name=op.f("pk_health_archives")),
        sa.UniqueConstraint("archive_number", name=op.f("uq_health_archives_archive_number")),
    )
    op.create_table(
        "immunizations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("vaccine", sa.String(length=4), nullable=False),
        sa.Column("dose", sa.Integer(), nullable=False),
        sa.Column("given_on", sa.Date(), nullable=False),
        sa.Column("lot", sa.String(length=30), nullable=False),
        sa.Column("institution_code", sa.String(length=22), nullable=False),
        sa.Column("recorded_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_code"],
            ["institutions.code"],
            name=op.f("fk_immunizations_institution_code_institutions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_immunizations")),
        sa.UniqueConstraint("resident_id", "vaccine", "dose", name=op.f("uq_immunizations_resident_id")),
    )
    with op.batch_alter_table("immunizations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_immunizations_resident_id"), ["resident_id"], unique=False)
        batch_op.create_index("ix_immunizations_vaccine_given", ["vaccine", "given_on"], unique=False)

    op.create_table(
        "resident_identifiers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("system", sa.String(length=16), nullable=False),
        sa.Column("assigner", sa.String(length=22), nullable=False),
        sa.Column("value", sa.String(length=40), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["residents.resident_id"],
            name=op.f("fk_resident_identifiers_resident_id_residents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resident_identifiers")),
        sa.UniqueConstraint("system", "assigner", "value", name=op.f("uq_resident_identifiers_system")),
    )
    with op.batch_alter_table("resident_identifiers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_resident_identifiers_resident_id"), ["resident_id"], unique=False
        )

    op.create_table(
        "terminals",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("institution_code", sa.String(length=22), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.String(length=130), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_code"],
            ["institutions.code"],
            name=op.f("fk_terminals_institution_code_institutions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terminals")),
    )
    with op.batch_alter_table("terminals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_terminals_institution_code"), ["institution_code"], unique=False)

    op.create_table(
        "diagnoses",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("encounter_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("primary", sa.Boolean(), nullable=False),
        sa.Column("category", sa.String(length=12), nullable=False),
        sa.Column("diagnosed_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["encounter_id"], ["encounters.id"], name=op.f("fk_diagnoses_encounter_id_encounters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_diagnoses")),
    )
    with op.batch_alter_table("diagnoses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_diagnoses_encounter_id"), ["encounter_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_diagnoses_resident_id"), ["resident_id"], unique=False)

    op.create_table(
        "observations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("encounter_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("kind", sa.String(length=6), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("value_num", sa.Double(), nullable=True),
        sa.Column("unit", sa.String(length=20), nullable=False),
        sa.Column("low", sa.Double(), nullable=True),
        sa.Column("high", sa.Double(), nullable=True),
        sa.Column("flag", sa.String(length=1), nullable=True),
        sa.Column("category", sa.String(length=12), nullable=False),
        sa.Column("observed_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["encounter_id"], ["encounters.id"], name=op.f("fk_observations_encounter_id_encounters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observations")),
    )
    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_observations_encounter_id"), ["encounter_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_observations_resident_id"), ["resident_id"], unique=False)

    op.create_table(
        "prescriptions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("encounter_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("drug", sa.String(length=50), nullable=False),
        sa.Column("drug_code", sa.String(length=20), nullable=True),
        sa.Column("dose", sa.String(length=10), nullable=False),
        sa.Column("dose_unit", sa.String(length=6), nullable=False),
        sa.Column("route_code", sa.String(length=2), nullable=False),
        sa.Column("frequency", sa.String(length=20), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=12), nullable=False),
        sa.Column("prescribed_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["encounter_id"], ["encounters.id"], name=op.f("fk_prescriptions_encounter_id_encounters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prescriptions")),
    )
    with op.batch_alter_table("prescriptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_prescriptions_encounter_id"), ["encounter_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_prescriptions_resident_id"), ["resident_id"], unique=False)

    op.create_table(
        "procedures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("encounter_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("category", sa.String(length=12), nullable=False),
        sa.Column("performed_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["encounter_id"], ["encounters.id"], name=op.f("fk_procedures_encounter_id_encounters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_procedures")),
    )
    with op.batch_alter_table("procedures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_procedures_encounter_id"), ["encounter_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_procedures_resident_id"), ["resident_id"], unique=False)

    with op.batch_alter_table("institutions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("level", sa.String(length=10), nullable=True))

    with op.batch_alter_table("residents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("area_code", sa.String(length=6), nullable=True))
        batch_op.add_column(sa.Column("name_pinyin", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("merged_into", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_residents_area_code"), ["area_code"], unique=False)
        batch_op.create_index("ix_residents_birth_date_sex", ["birth_date", "sex"], unique=False)
        batch_op.create_index(batch_op.f("ix_residents_merged_into"), ["merged_into"], unique=False)
        batch_op.create_index("ix_residents_name", ["name"], unique=False)
        batch_op.create_index("ix_residents_name_pinyin", ["name_pinyin"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("residents", schema=None) as batch_op:
        batch_op.drop_index("ix_residents_name_pinyin")
        batch_op.drop_index("ix_residents_name")
        batch_op.drop_index(batch_op.f("ix_residents_merged_into"))
        batch_op.drop_index("ix_residents_birth_date_sex")
        batch_op.drop_index(batch_op.f("ix_residents_area_code"))
        batch_op.drop_column("merged_into")
        batch_op.drop_column("name_pinyin")
        batch_op.drop_column("area_code")

    with op.batch_alter_table("institutions", schema=None) as batch_op:
        batch_op.drop_column("level")

    with op.batch_alter_table("procedures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_procedures_resident_id"))
        batch_op.drop_index(batch_op.f("ix_procedures_encounter_id"))

    op.drop_table("procedures")
    with op.batch_alter_table("prescriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prescriptions_resident_id"))
        batch_op.drop_index(batch_op.f("ix_prescriptions_encounter_id"))

    op.drop_table("prescriptions")
    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_observations_resident_id"))
        batch_op.drop_index(batch_op.f("ix_observations_encounter_id"))

    op.drop_table("observations")
    with op.batch_alter_table("diagnoses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_diagnoses_resident_id"))
        batch_op.drop_index(batch_op.f("ix_diagnoses_encounter_id"))

    op.drop_table("diagnoses")
    with op.batch_alter_table("terminals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_terminals_institution_code"))

    op.drop_table("terminals")
    with op.batch_alter_table("resident_identifiers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resident_identifiers_resident_id"))

    op.drop_table("resident_identifiers")
    with op.batch_alter_table("immunizations", schema=None) as batch_op:
        batch_op.drop_index("ix_immunizations_vaccine_given")
        batch_op.drop_index(batch_op.f("ix_immunizations_resident_id"))

    op.drop_table("immunizations")
    op.drop_table("health_archives")
    with op.batch_alter_table("encounters", schema=None) as batch_op:
        batch_op.drop_index("ix_encounters_resident_started")
        batch_op.drop_index(batch_op.f("ix_encounters_institution_code"))

    op.drop_table("encounters")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounts_resident_id"))

    op.drop_table("accounts")
    with op.batch_alter_table("presence_grants", schema=None) as batch_op:
        batch_op.drop_index("ix_presence_grants_resident_institution")

    op.drop_table("presence_grants")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_resident_at")

    op.drop_table("notifications")
    with op.batch_alter_table("mpi_merges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mpi_merges_source_resident_id"))
        batch_op.drop_index(batch_op.f("ix_mpi_merges_resident_id"))

    op.drop_table("mpi_merges")
    with op.batch_alter_table("mpi_candidates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mpi_candidates_status"))
        batch_op.drop_index(batch_op.f("ix_mpi_candidates_resident_id"))

    op.drop_table("mpi_candidates")
    op.drop_table("hidden_categories")
    with op.batch_alter_table("card_uses", schema=None) as batch_op:
        batch_op.drop_index("ix_card_uses_resident_at")

    op.drop_table("card_uses")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_resident_at")

    op.drop_table("audit_log")
    op.drop_table("audit_heads")
    with op.batch_alter_table("allergies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_allergies_resident_id"))

    op.drop_table("allergies")
