"""Bookings carry the booker's ``Idempotency-Key`` (``bookings.idempotency_key``, unique per
booker): a booking whose answer was lost — the network, or the database dying just after the
commit — is retried with the same key and answered with the first booking instead of 409.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=64), nullable=True))
        batch_op.create_index("uq_bookings_booked_by_key", ["booked_by", "idempotency_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_index("uq_bookings_booked_by_key")
        batch_op.drop_column("idempotency_key")
