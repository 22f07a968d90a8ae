"""Restriction lists: versions, their entries, and the parties of documents found on them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 10:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('list_versions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('loaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('files', JSON, nullable=False),
    sa.Column('entry_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_list_versions'))
    )
    op.create_table('list_entries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('list_code', sa.String(length=16), nullable=False),
    sa.Column('record', JSON, nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['list_versions.id'], name=op.f('fk_list_entries_version_id_list_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_list_entries'))
    )
    op.create_index(op.f('ix_list_entries_version_id'), 'list_entries', ['version_id'], unique=False)
    op.create_table('party_matches',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('doc_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('party', sa.Text(), nullable=False),
    sa.Column('list_code', sa.String(length=16), nullable=False),
    sa.Column('list_name', sa.Text(), nullable=False),
    sa.Column('entry_key', sa.String(length=128), nullable=False),
    sa.Column('entry_name', sa.Text(), nullable=False),
    sa.Column('matched_name', sa.Text(), nullable=False),
    sa.Column('method', sa.String(length=32), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('strength', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['doc_id'], ['documents.id'], name=op.f('fk_party_matches_doc_id_documents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_party_matches'))
    )
    op.create_index(op.f('ix_party_matches_doc_id'), 'party_matches', ['doc_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_party_matches_doc_id'), table_name='party_matches')
    op.drop_table('party_matches')
    op.drop_index(op.f('ix_list_entries_version_id'), table_name='list_entries')
    op.drop_table('list_entries')
    op.drop_table('list_versions')
