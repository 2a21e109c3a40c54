"""indexes for run search at scale: runs by (experiment_id, start_time), latest_metrics by
(key, is_nan, value, run_id), params by (key, value, run_id)

A filter on a metric or param reads the matching runs from the index, and an order by a
metric or param walks it in order, instead of a lookup per run and a sort of them all; an experiment's
runs newest first walk the runs index.
On PostgreSQL the params index is partial (values up to 1,000 characters): a btree entry
is limited to ~2.7 kB and a param value may be 6,000.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03

"""

import sqlalchemy as sa
from alembic import op


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_runs_experiment_start', 'runs', ['experiment_id', 'start_time'], unique=False)
    op.create_index('ix_latest_metrics_key_nan_value_run', 'latest_metrics', ['key', 'is_nan', 'value', 'run_id'], unique=False)
    op.create_index('ix_params_key_value_run', 'params', ['key', 'value', 'run_id'], unique=False, postgresql_where=sa.text('length(value) <= 1000'))


def downgrade() -> None:
    op.drop_index('ix_params_key_value_run', table_name='params')
    op.drop_index('ix_latest_metrics_key_nan_value_run', table_name='latest_metrics')
    op.drop_index('ix_runs_experiment_start', table_name='runs')
