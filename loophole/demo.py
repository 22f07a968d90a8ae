"""``loophole demo``: the whole chain on a local mock web, end to end."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from ground.config import SEEDS_DIR, Settings
from ground.sources import load_sources
from index.store import Alert, Document, Store
from loophole.crawl import CrawlJob, run_crawl
from loophole.notify import deliver_digest
from loophole.webserver import serve_directory

DEMO_WEB = SEEDS_DIR / "demo"
# The mock web is on loopback and ours: no need to be polite to it, and robots.txt is absent.
DEMO_OVERRIDES = {"DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False, "ROBOTSTXT_OBEY": False,
                  "CONCURRENT_REQUESTS_PER_DOMAIN": 8}


def demo_jobs(settings: Settings, base_url: str) -> list[CrawlJob]:
    return [CrawlJob(source, base_url) for source in load_sources(settings.sources_file).values() if source.demo]


def demo_settings(settings: Settings, jobs: list[CrawlJob]) -> Settings:
    """The demo runs its own sources only; its digest's crawl health is about them and no other."""
    scheduler = settings.scheduler.model_copy(update={"sources": [job.source.id for job in jobs]})
    return settings.model_copy(update={"scheduler": scheduler})


def summary_table(settings: Settings) -> Table:
    store = Store(settings.db_url)
    table = Table(title="Loophole Watch demo: documents and alerts")
    for column in ("doc", "source", "kind", "lang", "title", "alerts"):
        table.add_column(column)
    with store.session() as session:
        for doc in session.scalars(select(Document).order_by(Document.source, Document.id)):
            patterns = session.scalars(select(Alert.pattern_id).where(Alert.doc_id == doc.id)).all()
            table.add_row(str(doc.id), doc.source, doc.kind, doc.lang, doc.title[:48], ", ".join(patterns))
    store.close()
    return table


def run_demo(settings: Settings, port: int = 0) -> None:
    console = Console()
    with serve_directory(DEMO_WEB, port=port) as base_url:
        console.print(f"mock web at {base_url}")
        jobs = demo_jobs(settings, base_url)
        run_crawl(settings, jobs, DEMO_OVERRIDES)
    console.print(summary_table(settings))
    for line in deliver_digest(demo_settings(settings, jobs)).lines():
        console.print(f"digest {line}", highlight=False)
