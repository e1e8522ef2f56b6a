"""Alert suppression: an alert is open until window_end; repeats inside the window are counted into it.

The dedup key is no longer unique: after the window a repeat opens a new alert, and a summary of
the repeats is sent. Stores from before keep their alerts (window_end null: open, as before).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alert_outbox") as batch:
        batch.drop_constraint("uq_alert_dedup", type_="unique")
        batch.add_column(sa.Column("window_end", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("repeats", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("repeat_requests", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_repeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("summarised_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_alert_dedup_window", ["dedup_key", "window_end"])


def downgrade() -> None:
    with op.batch_alter_table("alert_outbox") as batch:
        batch.drop_index("ix_alert_dedup_window")
        batch.drop_column("summarised_at")
        batch.drop_column("last_repeat_at")
        batch.drop_column("repeat_requests")
        batch.drop_column("repeats")
        batch.drop_column("window_end")
        batch.create_unique_constraint("uq_alert_dedup", ["dedup_key"])
