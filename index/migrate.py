"""Schema migrations (Alembic), run by :class:`index.store.Store` when it opens a database.

The revisions live in ``index/migrations/versions`` from the first schema on, so a SQLite file
from an older release and a PostgreSQL database shared by many processes are both brought to
the models' shape the same way. A database made before migrations existed (by ``create_all``)
is recognised and stamped with the first revision, then upgraded.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
FIRST_REVISION = "0001"
_CURRENT: set[str] = set()  # URLs already upgraded by this process: opening a Store stays cheap


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    return str(ScriptDirectory.from_config(alembic_config()).get_current_head())


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _made_before_migrations(connection: Connection) -> bool:
    tables = set(inspect(connection).get_table_names())
    return "documents" in tables and "alembic_version" not in tables


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision``; idempotent, and a no-op once done in this process."""
    key = f"{engine.url!r}@{revision}"
    if key in _CURRENT:
        return
    with engine.begin() as connection:
        config = alembic_config(connection)
        if _made_before_migrations(connection):
            command.stamp(config, FIRST_REVISION)
        command.upgrade(config, revision)
    _CURRENT.add(key)
