"""async inference jobs (inference_jobs)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02

"""

import sqlalchemy as sa
from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inference_jobs',
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('endpoint', sa.String(length=256), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=256), nullable=True),
    sa.Column('callback_url', sa.Text(), nullable=True),
    sa.Column('tries', sa.Integer(), nullable=False),
    sa.Column('max_tries', sa.Integer(), nullable=False),
    sa.Column('holder', sa.String(length=256), nullable=True),
    sa.Column('lease_expires_at', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('started_at', sa.BigInteger(), nullable=True),
    sa.Column('finished_at', sa.BigInteger(), nullable=True),
    sa.Column('expires_at', sa.BigInteger(), nullable=True),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('callback', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('job_id', name=op.f('pk_inference_jobs'))
    )
    op.create_index('ix_inference_jobs_status_created', 'inference_jobs', ['status', 'created_at'], unique=False)
    op.create_index('ix_inference_jobs_expires', 'inference_jobs', ['expires_at'], unique=False)
    op.create_index('ux_inference_jobs_idempotency', 'inference_jobs', ['endpoint', 'idempotency_key'], unique=True)


def downgrade() -> None:
    op.drop_index('ux_inference_jobs_idempotency', table_name='inference_jobs')
    op.drop_index('ix_inference_jobs_expires', table_name='inference_jobs')
    op.drop_index('ix_inference_jobs_status_created', table_name='inference_jobs')
    op.drop_table('inference_jobs')
