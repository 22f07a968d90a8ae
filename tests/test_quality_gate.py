"""Detection quality gate on the dev corpus: pinned floors that only ever rise.

Measured with `loophole eval ../shared/corpus/dev --json`; when a change improves the
figures, raise the floors to just under the new values in the same commit.
"""

from __future__ import annotations

import pytest

from loophole.config import Settings
from loophole.evaluate import evaluate
from tests.conftest import DEV_CORPUS, needs

FLOORS = {"precision": 0.95, "recall": 0.85, "macro_f1": 0.78}
NEWS_ALERTS_ALLOWED = 0


@pytest.fixture(scope="module")
def dev_result() -> dict:
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.pop("LOOPHOLE_CONFIG", None)
        result, _ = evaluate(DEV_CORPUS, Settings(home=tmp))
    return result


@needs(DEV_CORPUS)
def test_alert_precision_and_recall_floors(dev_result: dict) -> None:
    assert dev_result["documents"] == 90
    assert dev_result["alert"]["precision"] >= FLOORS["precision"]
    assert dev_result["alert"]["recall"] >= FLOORS["recall"]


@needs(DEV_CORPUS)
def test_macro_f1_floor(dev_result: dict) -> None:
    assert dev_result["macro_f1"] >= FLOORS["macro_f1"]


@needs(DEV_CORPUS)
def test_no_alert_on_news_or_commentary(dev_result: dict) -> None:
    assert dev_result["alerts_by_kind"].get("news-commentary", 0) <= NEWS_ALERTS_ALLOWED
