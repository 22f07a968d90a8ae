"""Alembic migrations: up from an empty database, stamping old files, and no drift from the models.

If ``test_migrations_match_models`` fails, a model in index/store.py changed without a revision:
write one (``alembic revision --autogenerate -m "..."`` at the repository root, then review it).
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from index.migrate import current_revision, head_revision, upgrade_schema
from index.store import Base, Store, make_plain_engine


def _drift(url: str) -> list:
    engine = make_plain_engine(url)
    upgrade_schema(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    return diff


def test_migrations_match_models_sqlite(tmp_path: Path) -> None:
    assert _drift(f"sqlite:///{tmp_path / 'm.db'}") == []


def test_migrations_match_models_postgresql(pg_url: str) -> None:
    assert _drift(pg_url) == []


def test_store_upgrades_an_empty_postgresql_database(pg_url: str) -> None:
    store = Store(pg_url)
    with store.engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        tables = set(inspect(conn).get_table_names())
        # JSON columns are JSONB on PostgreSQL, datetimes carry a time zone.
        types = {c["name"]: c["type"] for c in inspect(conn).get_columns("alerts")}
    store.close()
    assert {"documents", "chunks", "detections", "alerts", "snapshots", "crawl_runs", "alembic_version"} <= tables
    assert str(types["reasons"]) == "JSONB" and types["created_at"].timezone


def test_database_made_before_migrations_is_stamped_and_upgraded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_plain_engine(url)
    upgrade_schema(engine, "0001")  # the first schema, as create_all made it before migrations
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
    engine.dispose()
    store = Store(url)
    with store.engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        assert "text_hash" in {c["name"] for c in inspect(conn).get_columns("chunks")}
    store.close()


@pytest.mark.parametrize("revision", ["0001"])
def test_downgrade_and_upgrade_again(tmp_path: Path, revision: str) -> None:
    from alembic import command

    from index.migrate import alembic_config

    engine = make_plain_engine(f"sqlite:///{tmp_path / 'd.db'}")
    upgrade_schema(engine)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), revision)
        assert current_revision(conn) == revision
        command.upgrade(alembic_config(conn), "head")
        assert current_revision(conn) == head_revision()
    engine.dispose()


def test_cli_db_upgrade(home: Path) -> None:
    from typer.testing import CliRunner

    from loophole.cli import app

    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"revision {head_revision()}" in result.output and (home / "loophole.db").exists()


def _open_store(url: str, barrier: Any) -> None:
    """In a child process: wait for the others, then open (and so migrate) the store."""
    barrier.wait(timeout=120)
    Store(url).close()


def test_fresh_sqlite_store_opened_by_several_processes_at_once(tmp_path: Path) -> None:
    """Crawler processes starting together on a new data directory all migrate it: one does,
    the others wait and find it done (no "table ... already exists")."""
    url = f"sqlite:///{tmp_path / 'race.db'}"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    processes = [context.Process(target=_open_store, args=(url, barrier)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=180)
    assert [process.exitcode for process in processes] == [0, 0, 0, 0]
    engine = make_plain_engine(url)
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
    engine.dispose()
