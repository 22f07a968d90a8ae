"""Detection on real web pages (tests/fixtures/real_web): relay and proxy sellers and their docs,
account shops, top-up services, real news and commentary, official documentation and other real
negatives, in six collections (each gathered later than the one before, from other searches and
other hosts).

Their text is not ours to publish, so only addresses and labels are committed; the pages live in
the git-ignored ``pages/`` folder of whoever collected them (see that folder's README and
``check.py``). Without them this test skips; with them it gates the figures the README reports.

The decision's own weights for the reseller pattern are refitted on the features of the ``dev``
split (README, "Measured quality"), so the ``test`` split, split by site, never read and never
fitted on, is the honest figure; the first two collections together guard against regressions. The
third collection is all ``dev`` (the shapes of the pages it missed were described to the writer of
``genres_g``), but no shipped decision has been refitted on it: it is gated at its first run. The
fourth, fifth and sixth are all ``test``: scored, never read, never fitted on, and gated at their first runs too.
"""

from __future__ import annotations

import importlib.util
import json
import re
import tempfile
from pathlib import Path

import pytest

from ground.config import Settings
from index.crossval import reliability
from loophole.evaluate import Outcome, evaluate, metrics, news_alerts
from loophole.repo_pages import as_page, git_dir, read_repo_labels

REAL = Path(__file__).parent / "fixtures" / "real_web"
# Floors only rise. The first collection keeps its floors (measured 0.86 / 0.89 with the shipped
# models); the test parts of the first two collections and those two collections together are gated at
# what they measure (README, "Measured quality": 0.786 / 0.759 and 0.831 / 0.771); the third collection
# at its first run (0.667 / 0.353: no decision has been refitted on it), and so are the fourth (0.273 / 0.333:
# 9 sellers, 81 negatives), the fifth (0.500 / 0.455: 11 sellers, 75 negatives) and the sixth (0.231 / 1.000:
# 3 sellers, 85 negatives, 10 of them alerting).
FLOORS = {"first": {"precision": 0.84, "recall": 0.85}, "test": {"precision": 0.78, "recall": 0.75},
          "first_two": {"precision": 0.83, "recall": 0.77}, "third": {"precision": 0.66, "recall": 0.35},
          "fourth": {"precision": 0.27, "recall": 0.33}, "fifth": {"precision": 0.50, "recall": 0.45},
          "sixth": {"precision": 0.23, "recall": 1.0}}
# The news and analysis pieces that alert, by name, so that another one fails: a price comparison of
# coding-tool providers (first collection) and, at the fifth collection's first run, one news piece (README).
NEWS_ALERTS_ALLOWED = {"pages/s090.html", "pages/t017.html"}
COLLECTIONS = {"first": 1, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6}    # gated one by one (the second only with the first)


def _rows() -> list[dict]:
    return [json.loads(line) for line in (REAL / "labels.jsonl").read_text(encoding="utf-8").splitlines() if line]


def _present() -> bool:
    rows = _rows()
    return bool(rows) and all((REAL / row["file"]).is_file() for row in rows)


def _script(name: str):  # type: ignore[no-untyped-def]
    """A script beside the labels (check.py, repos.py), imported as a module."""
    spec = importlib.util.spec_from_file_location(f"real_web_{name}", REAL / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mirrors_present() -> bool:
    """Every mirror of the first runs is here (figures over fewer pages would not be the gated ones). Only the
    mirrors' directories are looked for: reading every page here, at collection, would read them all twice."""
    repos = _script("repos")
    present = sum(1 for page in read_repo_labels(repos.LABELS) if git_dir(repos.MIRRORS, page.repo).is_dir())
    return present == sum(run["pages"] for run in REPOS_FIRST_RUNS.values())


def _figures(outcomes: list[Outcome]) -> dict[str, float]:
    return metrics(outcomes, [])["alert"]


@pytest.mark.skipif(not _present(), reason="real pages not collected here (tests/fixtures/real_web/README.md)")
def test_real_pages_floors() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _, outcomes = evaluate(REAL, Settings(home=tmp))
    rows = {row["file"]: row for row in _rows()}
    collection = {file: row.get("collection", 1) for file, row in rows.items()}
    measured = {"first_two": _figures([o for o in outcomes if collection[o.label.file] <= 2]),
                "test": _figures([o for o in outcomes if rows[o.label.file]["split"] == "test"
                                  and collection[o.label.file] <= 2]),
                **{name: _figures([o for o in outcomes if collection[o.label.file] == number])
                   for name, number in COLLECTIONS.items()}}
    for part, floors in FLOORS.items():
        for name, floor in floors.items():
            assert measured[part][name] >= floor, (part, measured)
    news = set(news_alerts(outcomes))
    assert news <= NEWS_ALERTS_ALLOWED, news


# The collections read in place. Their first runs (README, "Measured quality"; docs/real-page-rounds-*.md) were the
# shipped model's, each scored once: the seventh, 61 of its 70 pages with a mirror (16 sellers), P 0.55, R 0.69, 20.0
# false alarms per 100; the eighth, 57 (10), 0.47 / 0.70 / 17.0; the ninth, 119 (25), 0.56 / 0.80 / 17.0; the tenth, 94
# (17), 0.41 / 0.88 / 28.6; the eleventh, 89 (28), 0.46 / 0.68 / 36.1; the twelfth, 46 (10), 0.43 / 0.60 / 22.2. The
# reseller stage (round 17) was fitted on the seventh to eleventh, so there these floors are in sample and guard against
# regressions only; the twelfth was scored once after it was frozen, and its floors are that confirm run.
# Floors only rise: each is the shipped model's figure now. Gated where every page of the collection is present.
REPOS_FIRST_RUNS = {7: {"pages": 61, "precision": 0.70, "recall": 0.87, "false_alarms_per_100": 13.3},
                    8: {"pages": 57, "precision": 0.75, "recall": 0.90, "false_alarms_per_100": 6.4},
                    9: {"pages": 119, "precision": 0.92, "recall": 1.00, "false_alarms_per_100": 2.1},
                    10: {"pages": 94, "precision": 0.80, "recall": 1.00, "false_alarms_per_100": 5.2},
                    11: {"pages": 89, "precision": 0.73, "recall": 0.89, "false_alarms_per_100": 14.8},
                    12: {"pages": 46, "precision": 0.66, "recall": 0.80, "false_alarms_per_100": 11.1}}
# What the reseller pattern's shown probabilities were worth there: ceilings on the expected calibration error and the
# Brier score of its scores, as measured with the stage (in sample on the seventh to eleventh, confirmed on the twelfth;
# before it, the display rescaling alone gave 0.144/0.136, 0.088/0.088, 0.078/0.104, 0.079/0.114, 0.104/0.175, 0.133/0.147).
RESELLER = "reseller-intermediary"
RESELLER_CONFIDENCE = {7: {"ece": 0.073, "brier": 0.062}, 8: {"ece": 0.070, "brier": 0.023},
                       9: {"ece": 0.077, "brier": 0.017}, 10: {"ece": 0.069, "brier": 0.022},
                       11: {"ece": 0.066, "brier": 0.066}, 12: {"ece": 0.089, "brier": 0.098}}


def test_the_repository_pages_are_labelled_by_the_spec_and_none_is_held_out() -> None:
    check = _script("check")
    hosts, urls = check._hashes("held-out-hosts.sha256"), check._hashes("held-out-urls.sha256")
    pages = read_repo_labels(_script("repos").LABELS)
    assert len({page.label.url for page in pages}) == len(pages) == 475
    for page in pages:
        assert re.fullmatch(r"[0-9a-f]{40}", page.commit), page
        assert page.label.patterns <= check.PATTERNS and page.label.kind in check.KINDS, page
        assert not check.held_out(page.label.url, hosts, urls), page.label.url


def test_a_markdown_page_is_rendered_as_its_host_shows_it_and_its_markup_stays_text() -> None:
    page = as_page("README.md", "# 中转\n\n| 模型 | 价格 |\n|---|---|\n| gpt | ¥1 |\n\n<script>x()</script>\n".encode())
    assert b"<title>\xe4\xb8\xad\xe8\xbd\xac</title>" in page and b"<table>" in page
    assert b"<script>" not in page


@pytest.mark.skipif(not _mirrors_present(), reason="the git mirrors of the collections read in place are not here")
def test_repository_pages_first_run_floors() -> None:
    repos = _script("repos")
    _, outcomes, missing = repos.score()
    for number, part in repos.by_collection(outcomes).items():
        floors, measured = REPOS_FIRST_RUNS[number], repos.figures(part)
        assert measured["pages"] == floors["pages"], (number, missing)
        assert measured["alert"]["precision"] >= floors["precision"], (number, measured)
        assert measured["alert"]["recall"] >= floors["recall"], (number, measured)
        assert measured["false_alarms_per_100"] <= floors["false_alarms_per_100"], (number, measured)
        assert not measured["news_alerts"], (number, measured)
        shown = [(o.scores[RESELLER], RESELLER in o.label.patterns) for o in part if RESELLER in o.scores]
        worth = reliability([p for p, _ in shown], [t for _, t in shown])
        assert worth["ece"] <= RESELLER_CONFIDENCE[number]["ece"], (number, worth)
        assert worth["brier"] <= RESELLER_CONFIDENCE[number]["brier"], (number, worth)
