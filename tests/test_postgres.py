"""The full chain on PostgreSQL: ingest demo pages, detect, raise alerts, deliver the digest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from ground.config import load_settings
from index.store import Alert, Document
from loophole.notify import deliver_digest
from loophole.pipeline import Monitor, RawPage

DEMO = Path(__file__).resolve().parent.parent / "seeds" / "demo"


def _demo_pages(count: int) -> list[dict]:
    """Some positives and some negatives from the demo web's answer key."""
    pages = [p for p in json.loads((DEMO / "expected.json").read_text(encoding="utf-8"))["pages"]
             if (DEMO / p["path"].lstrip("/")).is_file()]
    positives = [p for p in pages if p["patterns"]][: count // 2]
    negatives = [p for p in pages if not p["patterns"]][: count - len(positives)]
    return positives + negatives


def test_full_chain_on_postgresql(home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPHOLE_DATABASE_URL", pg_url)
    settings = load_settings()
    assert settings.db_url == pg_url
    pages = _demo_pages(4)
    monitor = Monitor(settings)
    try:
        for page in pages:
            body = (DEMO / page["path"].lstrip("/")).read_bytes()
            result = monitor.ingest(RawPage(url="http://demo.invalid" + page["path"], body=body, source="demo"))
            assert result.status == "stored", result.reason
            assert set(result.flagged) == set(page["patterns"]), page["path"]
        again = monitor.ingest(RawPage(url="http://demo.invalid" + pages[0]["path"],
                                       body=(DEMO / pages[0]["path"].lstrip("/")).read_bytes()))
        assert again.status == "unchanged"
    finally:
        monitor.close()
    expected_alerts = sum(len(p["patterns"]) for p in pages)
    report = deliver_digest(settings)
    assert report.count("email") == expected_alerts and Path(report.targets("email")[0].removeprefix("file:")).exists()
    monitor = Monitor(settings)
    with monitor.store.session() as session:
        assert session.query(Document).count() == len(pages)
        alerts = list(session.scalars(select(Alert)))
        assert len(alerts) == expected_alerts and all(a.sent_at is not None for a in alerts)
        assert all(a.reasons and a.history[0]["event"] == "created" for a in alerts)  # JSONB round-trips
    monitor.close()
    assert deliver_digest(settings).count("email") == 0  # nothing is sent twice
