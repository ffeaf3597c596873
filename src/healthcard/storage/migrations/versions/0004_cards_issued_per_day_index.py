"""The card centre's dashboard: an index on cards (issue date, city) for the cards issued per
day and city.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.create_index("ix_cards_issue_date_city_code", ["issue_date", "city_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.drop_index("ix_cards_issue_date_city_code")
