"""Triage and evidence: alerts.snoozed_until; evidence_bundles (each manifest's SHA-256 as written).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 09:00:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('alerts') as batch:
        batch.add_column(sa.Column('snoozed_until', sa.DateTime(timezone=True), nullable=True))
    op.create_table('evidence_bundles',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('doc_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('manifest_sha256', sa.String(length=64), nullable=False),
    sa.Column('file_name', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evidence_bundles')),
    sa.UniqueConstraint('manifest_sha256', name=op.f('uq_evidence_bundles_manifest_sha256'))
    )
    op.create_index(op.f('ix_evidence_bundles_doc_id'), 'evidence_bundles', ['doc_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_evidence_bundles_doc_id'), table_name='evidence_bundles')
    op.drop_table('evidence_bundles')
    with op.batch_alter_table('alerts') as batch:
        batch.drop_column('snoozed_until')
