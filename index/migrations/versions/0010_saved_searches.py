"""Saved searches delivered in digests, the pages each has shown, and what a delivery carried of them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 16:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('saved_searches',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('filters', JSON, nullable=False),
    sa.Column('view', sa.String(length=16), nullable=False),
    sa.Column('subscription', sa.String(length=64), nullable=False),
    sa.Column('top', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_saved_searches')),
    sa.UniqueConstraint('owner', 'name', name=op.f('uq_saved_searches_owner_name'))
    )
    op.create_index(op.f('ix_saved_searches_subscription'), 'saved_searches', ['subscription'], unique=False)
    op.create_table('saved_search_hits',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('search_id', sa.Integer(), nullable=False),
    sa.Column('doc_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=64), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['doc_id'], ['documents.id'], name=op.f('fk_saved_search_hits_doc_id_documents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['search_id'], ['saved_searches.id'], name=op.f('fk_saved_search_hits_search_id_saved_searches'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_saved_search_hits')),
    sa.UniqueConstraint('search_id', 'doc_id', 'channel', name=op.f('uq_saved_search_hits_search_id_doc_id_channel'))
    )
    op.create_index(op.f('ix_saved_search_hits_search_id'), 'saved_search_hits', ['search_id'], unique=False)
    with op.batch_alter_table('deliveries') as batch:
        batch.add_column(sa.Column('search_hits', JSON, nullable=False, server_default='[]'))


def downgrade() -> None:
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_column('search_hits')
    op.drop_index(op.f('ix_saved_search_hits_search_id'), table_name='saved_search_hits')
    op.drop_table('saved_search_hits')
    op.drop_index(op.f('ix_saved_searches_subscription'), table_name='saved_searches')
    op.drop_table('saved_searches')
