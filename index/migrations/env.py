"""Alembic environment: the caller's connection (index.migrate), else ``sqlalchemy.url``, else the
configured database (ground.config) for the ``alembic`` command line.

``Store`` runs ``upgrade head`` itself on open; the ``alembic`` command line (alembic.ini at the
repository root) serves developers writing a new revision::

    alembic revision --autogenerate -m "add table x"
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from index.store import Base, make_plain_engine

# Any number will do as long as it is fixed: it serialises concurrent upgrades on PostgreSQL.
ADVISORY_LOCK = 74_656_301


def _configure(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two crawler processes opening a fresh database at once: one migrates, one waits.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
        context.run_migrations()


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:  # the `alembic` command line is an entry point of its own: the configured database
        from ground.config import load_settings

        url = load_settings().db_url
    engine = make_plain_engine(url)
    with engine.connect() as conn:
        _configure(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")
run()
