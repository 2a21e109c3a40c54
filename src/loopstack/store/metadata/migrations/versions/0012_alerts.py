"""alert rules, their state and the alert history (alert_rules, alert_rule_state, alert_events)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02

"""

import sqlalchemy as sa
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'alert_rules',
        sa.Column('rule_id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('metric', sa.String(length=256), nullable=False),
        sa.Column('definition', sa.Text(), nullable=False),
        sa.Column('created_by', sa.String(length=256), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('updated_by', sa.String(length=256), nullable=False),
        sa.Column('updated_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('rule_id', name=op.f('pk_alert_rules')),
        sa.UniqueConstraint('project_id', 'name', name=op.f('uq_alert_rules_project_id_name')),
    )
    op.create_index(op.f('ix_alert_rules_project_id'), 'alert_rules', ['project_id'], unique=False)
    op.create_table(
        'alert_rule_state',
        sa.Column('rule_id', sa.Integer(), nullable=False),
        sa.Column('breaches', sa.Integer(), nullable=False),
        sa.Column('clean', sa.Integer(), nullable=False),
        sa.Column('firing_since', sa.BigInteger(), nullable=True),
        sa.Column('resolved_at', sa.BigInteger(), nullable=True),
        sa.Column('last_value', sa.Float(precision=53), nullable=True),
        sa.Column('last_evaluated', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ['rule_id'], ['alert_rules.rule_id'],
            name=op.f('fk_alert_rule_state_rule_id_alert_rules'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('rule_id', name=op.f('pk_alert_rule_state')),
    )
    op.create_table(
        'alert_events',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('rule', sa.String(length=128), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('metric', sa.String(length=256), nullable=False),
        sa.Column('severity', sa.String(length=16), nullable=False),
        sa.Column('category', sa.String(length=32), nullable=False),
        sa.Column('value', sa.Float(precision=53), nullable=False),
        sa.Column('threshold', sa.Float(precision=53), nullable=False),
        sa.Column('comparison', sa.String(length=2), nullable=False),
        sa.Column('labels', sa.Text(), nullable=False),
        sa.Column('at', sa.BigInteger(), nullable=False),
        sa.Column('started_at', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_events')),
    )
    op.create_index('ix_alert_events_project_at', 'alert_events', ['project_id', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_alert_events_project_at', table_name='alert_events')
    op.drop_table('alert_events')
    op.drop_table('alert_rule_state')
    op.drop_index(op.f('ix_alert_rules_project_id'), table_name='alert_rules')
    op.drop_table('alert_rules')
