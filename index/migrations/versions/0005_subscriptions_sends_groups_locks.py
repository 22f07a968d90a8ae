"""Subscriptions: per-subscription sends, near-duplicate groups with revisions, job locks.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 04:49:45.093335
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_locks',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('owner', sa.String(length=128), nullable=False),
    sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_job_locks'))
    )
    op.create_table('alert_sends',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('alert_id', sa.Integer(), nullable=False),
    sa.Column('subscription', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=64), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('target', sa.Text(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_alert_sends_alert_id_alerts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_sends')),
    sa.UniqueConstraint('alert_id', 'subscription', 'channel', 'revision', name=op.f('uq_alert_sends_alert_id_subscription_channel_revision'))
    )
    with op.batch_alter_table('alert_sends', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_sends_alert_id'), ['alert_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_sends_subscription'), ['subscription'], unique=False)

    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('group_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('revision', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_alerts_group_id'), ['group_id'], unique=False)

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subscription', sa.String(length=64), nullable=False, server_default=''))



def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('subscription')

    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerts_group_id'))
        batch_op.drop_column('updated_at')
        batch_op.drop_column('revision')
        batch_op.drop_column('group_id')

    with op.batch_alter_table('alert_sends', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_sends_subscription'))
        batch_op.drop_index(batch_op.f('ix_alert_sends_alert_id'))

    op.drop_table('alert_sends')
    op.drop_table('job_locks')
