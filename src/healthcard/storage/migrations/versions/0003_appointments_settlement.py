"""Appointments: departments, doctors, weekly schedules and their exceptions, clinic sessions,
slots, bookings (one live booking per resident per session and per slot) and booking
suspensions.  NCMS settlement: enrollments, accumulators, settlements and their lines, the
double-entry ledger; the resident's health account (never negative) and the bank's transfers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import healthcard.storage.tables

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "booking_suspensions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("starts_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=100), nullable=False),
        sa.Column("lifted_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_suspensions")),
    )
    with op.batch_alter_table("booking_suspensions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_booking_suspensions_resident_ends", ["resident_id", "ends_at"], unique=False
        )

    op.create_table(
        "ledger_transactions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=True),
        sa.Column("actor", sa.String(length=40), nullable=False),
        sa.Column("at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transactions")),
    )
    with op.batch_alter_table("ledger_transactions", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_transactions_at", ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_transactions_resident_id"), ["resident_id"], unique=False)

    op.create_table(
        "bank_transfers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bank", sa.String(length=12), nullable=False),
        sa.Column("bank_ref", sa.String(length=40), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("account_number", sa.String(length=32), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=False),
        sa.Column("received_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("txn_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["txn_id"], ["ledger_transactions.id"], name=op.f("fk_bank_transfers_txn_id_ledger_transactions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_transfers")),
        sa.UniqueConstraint("bank", "bank_ref", name=op.f("uq_bank_transfers_bank")),
    )
    with op.batch_alter_table("bank_transfers", schema=None) as batch_op:
        batch_op.create_index("ix_bank_transfers_bank_value_date", ["bank", "value_date"], unique=False)
        batch_op.create_index(batch_op.f("ix_bank_transfers_resident_id"), ["resident_id"], unique=False)

    op.create_table(
        "departments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("institution_code", sa.String(length=22), nullable=False),
        sa.Column("code", sa.String(length=6), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_code"],
            ["institutions.code"],
            name=op.f("fk_departments_institution_code_institutions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_departments")),
        sa.UniqueConstraint("institution_code", "code", name=op.f("uq_departments_institution_code")),
    )
    op.create_table(
        "health_accounts",
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("bank", sa.String(length=12), nullable=False),
        sa.Column("account_number", sa.String(length=32), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("opened_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("balance_fen >= 0", name=op.f("ck_health_accounts_balance_not_negative")),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.resident_id"], name=op.f("fk_health_accounts_resident_id_residents")
        ),
        sa.PrimaryKeyConstraint("resident_id", name=op.f("pk_health_accounts")),
        sa.UniqueConstraint("account_number", name=op.f("uq_health_accounts_account_number")),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("txn_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account", sa.String(length=48), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["txn_id"], ["ledger_transactions.id"], name=op.f("fk_ledger_entries_txn_id_ledger_transactions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_entries_account_id", ["account", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_entries_txn_id"), ["txn_id"], unique=False)

    op.create_table(
        "ncms_accumulators",
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("pool", sa.String(length=16), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("fund_paid_fen", sa.BigInteger(), nullable=False),
        sa.Column("outpatient_fund_paid_fen", sa.BigInteger(), nullable=False),
        sa.Column("outpatient_deductible_met_fen", sa.BigInteger(), nullable=False),
        sa.Column("admissions", sa.Integer(), nullable=False),
        sa.Column("settlements", sa.Integer(), nullable=False),
        sa.Column("updated_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["residents.resident_id"],
            name=op.f("fk_ncms_accumulators_resident_id_residents"),
        ),
        sa.PrimaryKeyConstraint("resident_id", "pool", "year", name=op.f("pk_ncms_accumulators")),
    )
    op.create_table(
        "ncms_enrollments",
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("pool", sa.String(length=16), nullable=False),
        sa.Column("ncms_number", sa.String(length=18), nullable=True),
        sa.Column("premium_fen", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("enrolled_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.resident_id"], name=op.f("fk_ncms_enrollments_resident_id_residents")
        ),
        sa.PrimaryKeyConstraint("resident_id", "year", name=op.f("pk_ncms_enrollments")),
    )
    with op.batch_alter_table("ncms_enrollments", schema=None) as batch_op:
        batch_op.create_index("ix_ncms_enrollments_pool_year", ["pool", "year"], unique=False)

    op.create_table(
        "doctors",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("institution_code", sa.String(length=22), nullable=False),
        sa.Column("department_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("title", sa.String(length=20), nullable=False),
        sa.Column("username", sa.String(length=40), nullable=True),
        sa.Column("fee_fen", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"], ["departments.id"], name=op.f("fk_doctors_department_id_departments")
        ),
        sa.ForeignKeyConstraint(
            ["institution_code"], ["institutions.code"], name=op.f("fk_doctors_institution_code_institutions")
        ),
        sa.ForeignKeyConstraint(
            ["username"], ["accounts.username"], name=op.f("fk_doctors_username_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_doctors")),
    )
    with op.batch_alter_table("doctors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_doctors_department_id"), ["department_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_doctors_institution_code"), ["institution_code"], unique=False)

    op.create_table(
        "settlements",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reverses_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("encounter_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("institution_code", sa.String(length=22), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("visit", sa.String(length=10), nullable=False),
        sa.Column("inside_pool", sa.Boolean(), nullable=False),
        sa.Column("referral", sa.Boolean(), nullable=False),
        sa.Column("referred_by", sa.String(length=22), nullable=True),
        sa.Column("pool", sa.String(length=16), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.Column("eligible_fen", sa.BigInteger(), nullable=False),
        sa.Column("deductible_fen", sa.BigInteger(), nullable=False),
        sa.Column("ratio_percent", sa.Integer(), nullable=False),
        sa.Column("fund_fen", sa.BigInteger(), nullable=False),
        sa.Column("self_fen", sa.BigInteger(), nullable=False),
        sa.Column("village_eligible_fen", sa.BigInteger(), nullable=False),
        sa.Column("capped", sa.Boolean(), nullable=False),
        sa.Column("paid_by", sa.String(length=8), nullable=False),
        sa.Column("diagnosis_code", sa.String(length=10), nullable=True),
        sa.Column("review", sa.String(length=60), nullable=True),
        sa.Column("cashier", sa.String(length=40), nullable=False),
        sa.Column("settled_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("txn_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["encounter_id"], ["encounters.id"], name=op.f("fk_settlements_encounter_id_encounters")
        ),
        sa.ForeignKeyConstraint(
            ["institution_code"],
            ["institutions.code"],
            name=op.f("fk_settlements_institution_code_institutions"),
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.resident_id"], name=op.f("fk_settlements_resident_id_residents")
        ),
        sa.ForeignKeyConstraint(
            ["reverses_id"], ["settlements.id"], name=op.f("fk_settlements_reverses_id_settlements")
        ),
        sa.ForeignKeyConstraint(
            ["txn_id"], ["ledger_transactions.id"], name=op.f("fk_settlements_txn_id_ledger_transactions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlements")),
        sa.UniqueConstraint(
            "institution_code", "idempotency_key", name=op.f("uq_settlements_institution_code")
        ),
        sa.UniqueConstraint("reverses_id", name=op.f("uq_settlements_reverses_id")),
    )
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.create_index("ix_settlements_encounter", ["encounter_id"], unique=False)
        batch_op.create_index("ix_settlements_resident_settled", ["resident_id", "settled_at"], unique=False)
        batch_op.create_index("ix_settlements_settled_at", ["settled_at"], unique=False)

    op.create_table(
        "clinic_sessions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("institution_code", sa.String(length=22), nullable=False),
        sa.Column("department_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("doctor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("on", sa.Date(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("starts_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("fee_fen", sa.Integer(), nullable=False),
        sa.Column("created_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"], ["departments.id"], name=op.f("fk_clinic_sessions_department_id_departments")
        ),
        sa.ForeignKeyConstraint(
            ["doctor_id"], ["doctors.id"], name=op.f("fk_clinic_sessions_doctor_id_doctors")
        ),
        sa.ForeignKeyConstraint(
            ["institution_code"],
            ["institutions.code"],
            name=op.f("fk_clinic_sessions_institution_code_institutions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinic_sessions")),
        sa.UniqueConstraint("doctor_id", "on", "period", name=op.f("uq_clinic_sessions_doctor_id")),
    )
    with op.batch_alter_table("clinic_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_clinic_sessions_department_on", ["department_id", "on"], unique=False)
        batch_op.create_index("ix_clinic_sessions_institution_on", ["institution_code", "on"], unique=False)

    op.create_table(
        "schedule_exceptions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("institution_code", sa.String(length=22), nullable=False),
        sa.Column("doctor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("on", sa.Date(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=True),
        sa.Column("reason", sa.String(length=60), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        sa.Column("created_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["doctor_id"], ["doctors.id"], name=op.f("fk_schedule_exceptions_doctor_id_doctors")
        ),
        sa.ForeignKeyConstraint(
            ["institution_code"],
            ["institutions.code"],
            name=op.f("fk_schedule_exceptions_institution_code_institutions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_exceptions")),
    )
    with op.batch_alter_table("schedule_exceptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_schedule_exceptions_institution_on", ["institution_code", "on"], unique=False
        )

    op.create_table(
        "schedule_templates",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("doctor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("walk_in", sa.Integer(), nullable=False),
        sa.Column("referral", sa.Integer(), nullable=False),
        sa.Column("slot_minutes", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["doctor_id"], ["doctors.id"], name=op.f("fk_schedule_templates_doctor_id_doctors")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_templates")),
        sa.UniqueConstraint(
            "doctor_id", "weekday", "period", "valid_from", name=op.f("uq_schedule_templates_doctor_id")
        ),
    )
    with op.batch_alter_table("schedule_templates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_schedule_templates_doctor_id"), ["doctor_id"], unique=False)

    op.create_table(
        "settlement_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("settlement_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("item", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("item_class", sa.String(length=1), nullable=False),
        sa.Column("fee_category", sa.String(length=2), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_fen", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["settlement_id"], ["settlements.id"], name=op.f("fk_settlement_lines_settlement_id_settlements")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_lines")),
    )
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_settlement_lines_settlement_id"), ["settlement_id"], unique=False
        )

    op.create_table(
        "slots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("session_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("pool", sa.String(length=8), nullable=False),
        sa.Column("starts_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["clinic_sessions.id"], name=op.f("fk_slots_session_id_clinic_sessions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slots")),
        sa.UniqueConstraint("session_id", "number", name=op.f("uq_slots_session_id")),
    )
    with op.batch_alter_table("slots", schema=None) as batch_op:
        batch_op.create_index("ix_slots_session_pool_status", ["session_id", "pool", "status"], unique=False)

    op.create_table(
        "bookings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("slot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("institution_code", sa.String(length=22), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("referred_by", sa.String(length=22), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("booked_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("booked_by", sa.String(length=40), nullable=False),
        sa.Column("cancelled_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by", sa.String(length=40), nullable=True),
        sa.Column("checked_in_at", healthcard.storage.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("encounter_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["encounter_id"], ["encounters.id"], name=op.f("fk_bookings_encounter_id_encounters")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.resident_id"], name=op.f("fk_bookings_resident_id_residents")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["clinic_sessions.id"], name=op.f("fk_bookings_session_id_clinic_sessions")
        ),
        sa.ForeignKeyConstraint(["slot_id"], ["slots.id"], name=op.f("fk_bookings_slot_id_slots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
    )
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.create_index("ix_bookings_resident_booked", ["resident_id", "booked_at"], unique=False)
        batch_op.create_index("ix_bookings_session_status", ["session_id", "status"], unique=False)
        batch_op.create_index(
            "uq_bookings_live_session_resident",
            ["session_id", "resident_id"],
            unique=True,
            sqlite_where=sa.text("status IN ('BOOKED', 'CHECKED_IN')"),
            postgresql_where=sa.text("status IN ('BOOKED', 'CHECKED_IN')"),
        )
        batch_op.create_index(
            "uq_bookings_live_slot",
            ["slot_id"],
            unique=True,
            sqlite_where=sa.text("status IN ('BOOKED', 'CHECKED_IN')"),
            postgresql_where=sa.text("status IN ('BOOKED', 'CHECKED_IN')"),
        )


def downgrade() -> None:
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_bookings_live_slot",
            sqlite_where=sa.text("status IN ('BOOKED', 'CHECKED_IN')"),
            postgresql_where=sa.text("status IN ('BOOKED', 'CHECKED_IN')"),
        )
        batch_op.drop_index(
            "uq_bookings_live_session_resident",
            sqlite_where=sa.text("status IN ('BOOKED', 'CHECKED_IN')"),
            postgresql_where=sa.text("status IN ('BOOKED', 'CHECKED_IN')"),
        )
        batch_op.drop_index("ix_bookings_session_status")
        batch_op.drop_index("ix_bookings_resident_booked")

    op.drop_table("bookings")
    with op.batch_alter_table("slots", schema=None) as batch_op:
        batch_op.drop_index("ix_slots_session_pool_status")

    op.drop_table("slots")
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlement_lines_settlement_id"))

    op.drop_table("settlement_lines")
    with op.batch_alter_table("schedule_templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schedule_templates_doctor_id"))

    op.drop_table("schedule_templates")
    with op.batch_alter_table("schedule_exceptions", schema=None) as batch_op:
        batch_op.drop_index("ix_schedule_exceptions_institution_on")

    op.drop_table("schedule_exceptions")
    with op.batch_alter_table("clinic_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_clinic_sessions_institution_on")
        batch_op.drop_index("ix_clinic_sessions_department_on")

    op.drop_table("clinic_sessions")
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.drop_index("ix_settlements_settled_at")
        batch_op.drop_index("ix_settlements_resident_settled")
        batch_op.drop_index("ix_settlements_encounter")

    op.drop_table("settlements")
    with op.batch_alter_table("doctors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_doctors_institution_code"))
        batch_op.drop_index(batch_op.f("ix_doctors_department_id"))

    op.drop_table("doctors")
    with op.batch_alter_table("ncms_enrollments", schema=None) as batch_op:
        batch_op.drop_index("ix_ncms_enrollments_pool_year")

    op.drop_table("ncms_enrollments")
    op.drop_table("ncms_accumulators")
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_entries_txn_id"))
        batch_op.drop_index("ix_ledger_entries_account_id")

    op.drop_table("ledger_entries")
    op.drop_table("health_accounts")
    op.drop_table("departments")
    with op.batch_alter_table("bank_transfers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bank_transfers_resident_id"))
        batch_op.drop_index("ix_bank_transfers_bank_value_date")

    op.drop_table("bank_transfers")
    with op.batch_alter_table("ledger_transactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_transactions_resident_id"))
        batch_op.drop_index("ix_ledger_transactions_at")

    op.drop_table("ledger_transactions")
    with op.batch_alter_table("booking_suspensions", schema=None) as batch_op:
        batch_op.drop_index("ix_booking_suspensions_resident_ends")

    op.drop_table("booking_suspensions")
