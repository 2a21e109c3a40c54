"""the event log's segment index (event_segments)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

"""

import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'event_segments',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('project_id', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('stream', sa.String(length=128), nullable=False),
        sa.Column('min_ts', sa.BigInteger(), nullable=False),
        sa.Column('max_ts', sa.BigInteger(), nullable=False),
        sa.Column('rows', sa.BigInteger(), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_event_segments')),
    )
    op.create_index(
        'ix_event_segments_stream_max_ts',
        'event_segments',
        ['project_id', 'stream', 'max_ts'],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index('ix_event_segments_stream_max_ts', table_name='event_segments')
    op.drop_table('event_segments')
