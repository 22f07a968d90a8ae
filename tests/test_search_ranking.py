"""The parts of evidence-first search that need no model: bilingual keywords, tokens, signals, ranks."""

from __future__ import annotations

from pathlib import Path

import pytest

from ground.config import SEEDS_DIR, ConfigError
from index.entities import load_watchlist
from index.lexical import add_dictionary_words, match_expression, tokenize
from index.query import QueryExpander, load_vocabulary
from index.ranking import DocumentSignals, _apply_alert, rank, relevance
from index.search import highlight


@pytest.fixture(scope="module")
def expander() -> QueryExpander:
    expander = QueryExpander(load_watchlist(SEEDS_DIR / "watchlist.yaml"),
                             load_vocabulary(SEEDS_DIR / "search_vocabulary.yaml"))
    add_dictionary_words(expander.dictionary())
    return expander


def test_english_words_reach_chinese_ones_and_back(expander: QueryExpander) -> None:
    english = expander.expand("police bureau buys servers with Nvidia GPUs")
    assert {"公安局", "采购", "服务器", "英伟达", "显卡"} <= set(english.extra)
    chinese = expander.expand("公安局采购英伟达GPU视频分析服务器")
    assert {"police", "procurement", "NVIDIA", "video analytics", "server"} <= set(chinese.extra)
    hikvision = expander.expand("Hikvision platform hosted on Microsoft Azure")
    assert {"海康威视", "部署", "微软云"} <= set(hikvision.extra)


def test_commentary_cues_and_nearby_words_are_not_expanded(expander: QueryExpander) -> None:
    found = expander.expand("Reuters reported that analysts say")
    assert "据报道" not in found.extra and "分析人士" not in found.extra
    assert expander.expand("customers").extra == ()    # "us" inside a word is not the US
    assert len(expander.expand(" ".join(["Hikvision Dahua Azure AWS Nvidia police server GPU"] * 5)).extra) <= 60


def test_domain_words_stay_whole_and_identifiers_intact(expander: QueryExpander) -> None:
    assert "英伟达" in tokenize("配置英伟达推理卡")
    assert {"算力租赁", "算力", "租赁"} <= set(tokenize("境外算力租赁服务"))   # whole, and its parts (search mode)
    assert "p4d.24xlarge" in tokenize("实例类型 p4d.24xlarge（8×A100）")
    expression = match_expression(["police"], ["公安局", "public security bureau"])
    assert '"police"' in expression and '"public security bureau"' in expression and " OR " in expression


def test_a_malformed_vocabulary_is_named_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "vocabulary.yaml"
    bad.write_text("version: '1'\ngroups:\n  - [police, 公安]\n  - police\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"vocabulary\.yaml:4: field groups\.1"):
        load_vocabulary(bad)


def test_signals_put_flagged_primary_pages_first_in_the_evidence_view() -> None:
    signals = DocumentSignals(secondary={3}, evidence={2: {"police-us-tech-procurement": 1.0}, 4: {"reseller": 1.0}})
    relevant = relevance(dense=[3, 1, 2, 4], lexical=[3, 2, 1, 4])
    about_police = {"police-us-tech-procurement": 1.0}
    assert rank(relevant, "everything", signals, about_police)[0][0] == 3          # the commentary
    evidence = [doc_id for doc_id, _ in rank(relevant, "evidence", signals, about_police)]
    assert evidence[0] == 2 and evidence[-1] == 3                                     # flagged first, commentary last
    assert evidence.index(4) < evidence.index(3)        # a page flagged for another pattern still beats commentary


def test_an_analysts_verdict_outranks_the_detector() -> None:
    patterns = {"gpu-cloud-rental": 1.0}
    _apply_alert(patterns, "gpu-cloud-rental", "dismissed")
    assert patterns == {}
    _apply_alert(patterns, "reseller-intermediary", "confirmed")
    assert patterns["reseller-intermediary"] > 1.0


def test_highlights_mark_the_equivalents_found_in_chinese_text() -> None:
    pieces = highlight("澄川市公安局采购服务器，配置英伟达推理卡。", ["police", "公安局", "英伟达", "customers"])
    assert [text for text, hit in pieces if hit] == ["公安局", "英伟达"]
    assert highlight("our customers in the US", ["us"]) == [("our customers in the ", False), ("US", True)]
