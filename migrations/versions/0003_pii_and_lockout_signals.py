"""Evidence: kinds of personal data seen in URLs, and lockout signals (403/451, 429, 5xx, timeouts).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = ("status_blocked", "status_rate_limited", "status_5xx", "status_timeout")


def upgrade() -> None:
    with op.batch_alter_table("evidence") as batch:
        batch.add_column(sa.Column("pii_kinds", sa.String(length=64), nullable=True))
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evidence") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
        batch.drop_column("pii_kinds")
