"""Discovery: the hosts found by web searches, their crawl schedule and back-off.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 09:00:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('discovered_hosts',
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('urls', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_crawled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_crawl_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('backoff_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('block_reason', sa.Text(), nullable=False),
    sa.Column('pages_day', sa.String(length=10), nullable=False),
    sa.Column('pages_today', sa.Integer(), nullable=False),
    sa.Column('alerts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('host', name=op.f('pk_discovered_hosts'))
    )
    op.create_index(op.f('ix_discovered_hosts_next_crawl_at'), 'discovered_hosts', ['next_crawl_at'], unique=False)
    op.create_index(op.f('ix_discovered_hosts_status'), 'discovered_hosts', ['status'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_discovered_hosts_status'), table_name='discovered_hosts')
    op.drop_index(op.f('ix_discovered_hosts_next_crawl_at'), table_name='discovered_hosts')
    op.drop_table('discovered_hosts')
