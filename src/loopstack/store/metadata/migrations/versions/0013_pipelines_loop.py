"""pipelines and the closed loop (pipeline_runs, pipeline_steps, step_cache, checkpoints,
leases, loop_triggers, loop_firings, gate_results, rollouts)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02

"""

import sqlalchemy as sa
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('checkpoints',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=256), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('progress', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('project_id', 'key', 'name', name=op.f('pk_checkpoints'))
    )
    op.create_table('gate_results',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('model_name', sa.String(length=256), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('gate', sa.String(length=128), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.Column('evaluated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gate_results'))
    )
    op.create_index('ix_gate_results_version', 'gate_results', ['project_id', 'model_name', 'version'], unique=False)
    op.create_table('leases',
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('holder', sa.String(length=256), nullable=False),
    sa.Column('acquired_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_leases'))
    )
    op.create_table('loop_triggers',
    sa.Column('trigger_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('spec', sa.Text(), nullable=False),
    sa.Column('pipeline', sa.String(length=1024), nullable=False),
    sa.Column('params', sa.Text(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('state', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('trigger_id', name=op.f('pk_loop_triggers'))
    )
    op.create_index('ux_loop_triggers_project_name', 'loop_triggers', ['project_id', 'name'], unique=True)
    op.create_table('pipeline_runs',
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('pipeline', sa.String(length=256), nullable=False),
    sa.Column('entrypoint', sa.String(length=1024), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('params', sa.Text(), nullable=False),
    sa.Column('graph', sa.Text(), nullable=False),
    sa.Column('executor', sa.String(length=64), nullable=False),
    sa.Column('tracking_run_id', sa.String(length=32), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('finished_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('run_uuid', name=op.f('pk_pipeline_runs'))
    )
    op.create_index('ix_pipeline_runs_project_created', 'pipeline_runs', ['project_id', 'created_at'], unique=False)
    op.create_table('rollouts',
    sa.Column('rollout_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('endpoint', sa.String(length=256), nullable=False),
    sa.Column('model_name', sa.String(length=256), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('plan', sa.Text(), nullable=False),
    sa.Column('step_index', sa.Integer(), nullable=False),
    sa.Column('step_started_at', sa.BigInteger(), nullable=True),
    sa.Column('watch', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('rollout_id', name=op.f('pk_rollouts'))
    )
    op.create_index('ix_rollouts_project_endpoint', 'rollouts', ['project_id', 'endpoint'], unique=False)
    op.create_table('step_cache',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('cache_key', sa.String(length=64), nullable=False),
    sa.Column('outputs', sa.Text(), nullable=False),
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('step', sa.String(length=256), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('project_id', 'cache_key', name=op.f('pk_step_cache'))
    )
    op.create_table('loop_firings',
    sa.Column('firing_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('trigger_id', sa.Integer(), nullable=False),
    sa.Column('dedup_key', sa.String(length=256), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('pipeline_run_uuid', sa.String(length=32), nullable=True),
    sa.Column('outcome', sa.Text(), nullable=False),
    sa.Column('fired_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['trigger_id'], ['loop_triggers.trigger_id'], name=op.f('fk_loop_firings_trigger_id_loop_triggers')),
    sa.PrimaryKeyConstraint('firing_id', name=op.f('pk_loop_firings'))
    )
    op.create_index('ix_loop_firings_project_fired', 'loop_firings', ['project_id', 'fired_at'], unique=False)
    op.create_index('ux_loop_firings_trigger_dedup', 'loop_firings', ['trigger_id', 'dedup_key'], unique=True)
    op.create_table('pipeline_steps',
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('step', sa.String(length=256), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('cache_key', sa.String(length=64), nullable=True),
    sa.Column('tracking_run_id', sa.String(length=32), nullable=True),
    sa.Column('outputs', sa.Text(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('cached_from', sa.String(length=32), nullable=True),
    sa.Column('started_at', sa.BigInteger(), nullable=True),
    sa.Column('finished_at', sa.BigInteger(), nullable=True),
    sa.Column('wall_s', sa.Float(precision=53), nullable=True),
    sa.Column('cpu_s', sa.Float(precision=53), nullable=True),
    sa.Column('peak_rss_bytes', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['run_uuid'], ['pipeline_runs.run_uuid'], name=op.f('fk_pipeline_steps_run_uuid_pipeline_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uuid', 'step', name=op.f('pk_pipeline_steps'))
    )


def downgrade() -> None:
    op.drop_table('pipeline_steps')
    op.drop_index('ux_loop_firings_trigger_dedup', table_name='loop_firings')
    op.drop_index('ix_loop_firings_project_fired', table_name='loop_firings')
    op.drop_table('loop_firings')
    op.drop_table('step_cache')
    op.drop_index('ix_rollouts_project_endpoint', table_name='rollouts')
    op.drop_table('rollouts')
    op.drop_index('ix_pipeline_runs_project_created', table_name='pipeline_runs')
    op.drop_table('pipeline_runs')
    op.drop_index('ux_loop_triggers_project_name', table_name='loop_triggers')
    op.drop_table('loop_triggers')
    op.drop_table('leases')
    op.drop_index('ix_gate_results_version', table_name='gate_results')
    op.drop_table('gate_results')
    op.drop_table('checkpoints')
