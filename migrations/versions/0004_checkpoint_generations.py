"""Checkpoints: the file's mtime when read and the rotated generations read to their end.

Together they let a restarted collector read every generation rotated while it was down, once.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("checkpoints") as batch:
        batch.add_column(sa.Column("mtime_ns", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("done", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("checkpoints") as batch:
        batch.drop_column("done")
        batch.drop_column("mtime_ns")
