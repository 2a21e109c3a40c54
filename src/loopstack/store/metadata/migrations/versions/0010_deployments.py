"""serving: deployments, their revisions and bandit state

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

"""

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'deployments',
        sa.Column('deployment_id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('stage', sa.String(length=16), nullable=False),
        sa.Column('policy', sa.String(length=16), nullable=False),
        sa.Column('config', sa.Text(), nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('created_by', sa.String(length=256), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('updated_by', sa.String(length=256), nullable=False),
        sa.Column('updated_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('deployment_id', name=op.f('pk_deployments')),
        sa.UniqueConstraint('project_id', 'name', name=op.f('uq_deployments_project_id_name')),
    )
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deployments_project_id'), ['project_id'], unique=False)
    op.create_table(
        'deployment_revisions',
        sa.Column('deployment_id', sa.Integer(), nullable=False),
        sa.Column('revision', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('stage', sa.String(length=16), nullable=False),
        sa.Column('policy', sa.String(length=16), nullable=False),
        sa.Column('config', sa.Text(), nullable=False),
        sa.Column('actor', sa.String(length=256), nullable=False),
        sa.Column('ts', sa.BigInteger(), nullable=False),
        sa.Column('comment', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ['deployment_id'],
            ['deployments.deployment_id'],
            name=op.f('fk_deployment_revisions_deployment_id_deployments'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('deployment_id', 'revision', name=op.f('pk_deployment_revisions')),
    )
    op.create_table(
        'bandit_state',
        sa.Column('deployment_id', sa.Integer(), nullable=False),
        sa.Column('arm', sa.String(length=64), nullable=False),
        sa.Column('pulls', sa.BigInteger(), nullable=False),
        sa.Column('reward_sum', sa.Float(precision=53), nullable=False),
        sa.Column('successes', sa.Float(precision=53), nullable=False),
        sa.Column('failures', sa.Float(precision=53), nullable=False),
        sa.Column('updated_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ['deployment_id'],
            ['deployments.deployment_id'],
            name=op.f('fk_bandit_state_deployment_id_deployments'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('deployment_id', 'arm', name=op.f('pk_bandit_state')),
    )


def downgrade() -> None:
    op.drop_table('bandit_state')
    op.drop_table('deployment_revisions')
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deployments_project_id'))
    op.drop_table('deployments')
