"""Destination facts on evidence: legal entity, cloud region and its country, CDN edge flag.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER TABLE ADD several columns with constraints in place
    with op.batch_alter_table("evidence") as batch:
        batch.add_column(sa.Column("legal_entity", sa.Text(), nullable=True))
        batch.add_column(sa.Column("region", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("region_country", sa.String(length=2), nullable=True))
        batch.add_column(sa.Column("edge", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evidence") as batch:
        batch.drop_column("edge")
        batch.drop_column("region_country")
        batch.drop_column("region")
        batch.drop_column("legal_entity")
