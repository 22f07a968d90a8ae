"""``loophole eval``'s confidence report: what a score shown in an alert means on a labelled folder."""

from __future__ import annotations

import pytest

from loophole.evaluate import Label, Outcome, confidence


def outcome(name: str, truth: set[str], scores: dict[str, float]) -> Outcome:
    return Outcome(Label(name, name, "other", truth), set(), "other", scores=scores)


def test_bands_count_every_page_and_pattern_and_say_how_often_each_was_evidence() -> None:
    outcomes = [outcome("a", {"p"}, {"p": 0.95, "q": 0.02}),
                outcome("b", set(), {"p": 0.92, "q": 0.05}),
                outcome("c", {"q"}, {"p": 0.4, "q": 1.0})]
    shown = confidence(outcomes)
    bands = {(band.low, band.high): band for band in shown.bands}
    assert set(bands) == {(0.0, 0.1), (0.3, 0.5), (0.9, 1.0)}
    top = bands[(0.9, 1.0)]
    assert (top.scores, top.evidence) == (3, pytest.approx(2 / 3, abs=1e-3)), "a score of exactly 1.0 is in the top band"
    assert bands[(0.0, 0.1)].evidence == 0.0
    assert shown.brier == pytest.approx((0.05 ** 2 + 0.02 ** 2 + 0.92 ** 2 + 0.05 ** 2 + 0.4 ** 2 + 0.0) / 6, abs=1e-4)


def test_no_scores_is_no_error() -> None:
    """A folder where every page was rejected (a block page, say) has nothing to calibrate against."""
    shown = confidence([Outcome(Label("a", "a", "other", set()), set(), "rejected")])
    assert (shown.brier, shown.ece, shown.bands) == (0.0, 0.0, [])
