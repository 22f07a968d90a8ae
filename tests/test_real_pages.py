"""Detection on real web pages (tests/fixtures/real_web): relay and proxy sellers, account shops,
top-up services, real news and commentary, official documentation and other real negatives.

Their text is not ours to publish, so only addresses and labels are committed; the pages live in
the git-ignored ``pages/`` folder of whoever collected them (see that folder's README and
``check.py``). Without them this test skips; with them it gates the figures the README reports.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from ground.config import Settings
from loophole.evaluate import evaluate

REAL = Path(__file__).parent / "fixtures" / "real_web"
# Floors only rise. On the second collection (README) precision is 0.833, under this floor: a
# re-collected opening differs by a line, which moved one borderline page (0.316 against the cut
# 0.30) across the cut. Left failing there rather than lowered.
FLOORS = {"precision": 0.84, "recall": 0.85}
MAX_NEWS_ALERTS = 1    # one price comparison of coding-tool providers (README)


def _present() -> bool:
    rows = [json.loads(line) for line in (REAL / "labels.jsonl").read_text(encoding="utf-8").splitlines() if line]
    return bool(rows) and all((REAL / row["file"]).is_file() for row in rows)


@pytest.mark.skipif(not _present(), reason="real pages not collected here (tests/fixtures/real_web/README.md)")
def test_real_pages_floors() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        result, outcomes = evaluate(REAL, Settings(home=tmp))
    assert result["alert"]["precision"] >= FLOORS["precision"], result["alert"]
    assert result["alert"]["recall"] >= FLOORS["recall"], result["alert"]
    news = [o.label.file for o in outcomes if o.label.kind == "news-commentary" and o.predicted]
    assert len(news) <= MAX_NEWS_ALERTS, news
