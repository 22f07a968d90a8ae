"""Documents: process_id links the notices of one procurement (same project number and buyer).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 04:26:43.714318
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('process_id', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_documents_process_id'), ['process_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_documents_process_id'))
        batch_op.drop_column('process_id')

