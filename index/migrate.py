"""Schema migrations (Alembic), run by :class:`index.store.Store` when it opens a database.

The revisions live in ``index/migrations/versions`` from the first schema on, so a SQLite file
from an older release and a PostgreSQL database shared by many processes are both brought to
the models' shape the same way. A database made before migrations existed (by ``create_all``)
is recognised and stamped with the first revision, then upgraded.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def schema_lock(engine: Engine) -> Iterator[None]:
    """Hold this while changing the schema of a SQLite file: an exclusive lock on a file beside
    it, so of several processes opening a new database at once (crawler workers on a fresh data
    directory) one migrates and the others wait, then find it done. SQLite's own locking does not
    cover this: each process reads "no tables" before any of them writes, and the second
    ``CREATE TABLE`` fails. PostgreSQL takes an advisory lock instead (migrations/env.py);
    an in-memory database belongs to one process."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    with open(f"{database}.schema-lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # released when the file closes, or the process dies
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision``; idempotent, safe when several processes do it at
    once (:func:`schema_lock`), and a no-op once done in this process."""
    key = f"{engine.url!r}@{revision}"
    if key in _CURRENT:
        return
    with schema_lock(engine), engine.begin() as connection:
        config = alembic_config(connection)
        if _made_before_migrations(connection):
            command.stamp(config, FIRST_REVISION)
        command.upgrade(config, revision)
    _CURRENT.add(key)
