"""index of the params whose value is longer than 1,000 characters: params by (key,
run_id), partial

On PostgreSQL the (key, value, run_id) index of 0015 holds only the values of up to
1,000 characters; a param filter reads it and this one (a union of the two), and an order
by a param walks it alone once this one shows the key has no longer value. Partial on
SQLite too, where it is not read (its params index holds every value) and costs little.
On PostgreSQL, two extended statistics on params for the planner (filled by ANALYZE):
the distribution of length(value), without which it takes a third of the rows for either
side of the partial indexes' predicate (and probes the long values with a scan of the
table), and the most common (key, value) pairs, without which it takes `key = 'model'
and value = 'gbm'` for a few rows when it is a fifth of the runs (and hashes them all
rather than walk the newest runs).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04

"""

import sqlalchemy as sa
from alembic import op


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_params_key_long_run', 'params', ['key', 'run_id'], unique=False, postgresql_where=sa.text('length(value) > 1000'), sqlite_where=sa.text('length(value) > 1000'))
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        op.execute('CREATE STATISTICS st_params_key_value (mcv) ON key, value FROM params')
        if (bind.dialect.server_version_info or (0,)) >= (14,):  # stats on an expression
            op.execute('CREATE STATISTICS st_params_value_length ON (length(value)) FROM params')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP STATISTICS IF EXISTS st_params_value_length')
        op.execute('DROP STATISTICS IF EXISTS st_params_key_value')
    op.drop_index('ix_params_key_long_run', table_name='params')
