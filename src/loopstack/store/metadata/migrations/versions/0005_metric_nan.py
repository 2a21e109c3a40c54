"""metric NaN flag

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

SQLite turns a NaN REAL into NULL, so a NaN metric point is stored as value 0 with
``is_nan`` set (as MLflow does); infinities are stored as they are.
"""

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('metrics', 'latest_metrics'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column('is_nan', sa.Boolean(), server_default=sa.text('false'), nullable=False)
            )


def downgrade() -> None:
    for table in ('metrics', 'latest_metrics'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('is_nan')
