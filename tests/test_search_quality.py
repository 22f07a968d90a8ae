"""Search quality: evidence first on analysts' queries, and crossing languages.

Evidence first (loophole/search_eval.py): the share of each query's top ten that is evidence for
its pattern, beside the naive dense baseline. The tuning queries on the dev corpus run in every
suite (in-sample: the ranking was set on them); the query set written apart runs on the held-out
sets 15-18 pooled (160 pages the ranking was never set on) in the slow suite. Floors are pinned
under the measured figures (README, "Search and the web app").

Crossing languages: each pattern's description (spec/patterns.md) is asked in the OTHER language
from the documents it should find, the language filter keeping each query to the other language.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.search import SearchEngine, SearchFilters, engine_for
from loophole.search_eval import (
    document_urls,
    evaluate,
    ingest_folders,
    rankers_for,
    read_folder,
    read_queries,
    summary,
)
from tests.conftest import DEV_CORPUS, ROOT, needs
from tests.corpus_home import ingested_corpus, settings_for

QUERY_SETS = ROOT / "tests" / "fixtures" / "search_queries"
HELD_OUT = [ROOT / "tests" / "fixtures" / f"holdout{n}" for n in (15, 16, 17, 18)]
EVIDENCE = "hybrid, evidence first"
BASELINE = "dense baseline (best sentence per page)"

QUERIES = {
    "gpu-cloud-rental": {
        "en": "A buyer in, or tied to, the PRC rents, procures or seeks remote access to export-controlled AI "
              "accelerators (NVIDIA A100/A800/H100/H800/H20/H200/B200, AMD MI250/MI300 and the like) through cloud "
              "instances or compute-rental services, typically from US cloud providers (AWS, Microsoft Azure, "
              "Google Cloud, Oracle) or their overseas regions (Singapore, Tokyo, Frankfurt, US regions), or from "
              "overseas compute brokers.",
        "zh": "中国境内或与中国有关联的采购方，通过云实例或算力租赁服务租用、采购或远程使用受出口管制的AI加速芯片"
              "（英伟达A100、A800、H100、H800、H20、H200、B200，AMD MI250、MI300等），供应方通常是美国云服务商"
              "（AWS、微软Azure、谷歌云、甲骨文云）或其新加坡、东京、法兰克福、美国等海外区域，或境外算力经纪商。",
    },
    "us-cloud-ai-services": {
        "en": "A PRC government body, state-owned enterprise, state-backed research institute, military-linked or "
              "sanctioned organisation procures or seeks US cloud AI or big-data services, or API access to US "
              "frontier models (Azure OpenAI, OpenAI API, AWS Bedrock or SageMaker, Google Vertex AI or Gemini, "
              "big-data analytics on AWS or Azure).",
        "zh": "中国政府机关、国有企业、国家支持的科研院所、涉军或受制裁机构采购或寻求美国云端人工智能或大数据服务，"
              "或美国前沿大模型的API接口（Azure OpenAI、OpenAI API、AWS Bedrock或SageMaker、谷歌Vertex AI或Gemini，"
              "以及AWS或Azure上的大数据分析）。",
    },
    "surveillance-vendor-on-us-cloud": {
        "en": "A sanctioned or Entity-Listed PRC surveillance vendor (Hikvision, Dahua, SenseTime, Megvii, iFlytek, "
              "CloudWalk, Yitu, Uniview and their subsidiaries) markets a surveillance, video-management or "
              "facial-recognition platform that is hosted on, deployable on, or sold through a US cloud (for example "
              "a video-management platform deployed on Azure, a VSaaS on AWS, a listing in a cloud marketplace).",
        "zh": "受制裁或列入实体清单的中国监控厂商（海康威视、大华、商汤、旷视、科大讯飞、云从、依图、宇视及其子公司）"
              "宣传其视频监控、视频管理或人脸识别平台托管于、可部署于或通过美国云销售，例如部署在Azure上的视频管理平台、"
              "运行在AWS上的视频监控即服务，或云市场中的上架产品。",
    },
    "reseller-intermediary": {
        "en": "A third-party reseller, overseas subsidiary, shell company or account broker offers or arranges PRC "
              "users' access to US cloud accounts, GPUs or frontier models (account registration without real-name "
              "checks, top-ups, enterprise access to Azure OpenAI, contracts signed through Hong Kong or Singapore "
              "entities so that the end user is hidden).",
        "zh": "第三方代理商、海外子公司、空壳公司或账号中介为中国用户提供或安排美国云账号、GPU或前沿大模型的使用渠道"
              "（免实名注册账号、代充值、Azure OpenAI企业级接入、通过香港或新加坡主体签约以隐藏最终用户）。",
    },
    "police-us-tech-procurement": {
        "en": "PRC public-security, police, prison, border or Xinjiang authorities procure surveillance or policing "
              "technology of US origin (NVIDIA or Intel chips in video-analytics servers, US-brand servers or "
              "databases in policing platforms, US DNA-sequencing equipment).",
        "zh": "中国公安、警察、监狱、边检或新疆有关部门采购美国原产的监控或警务技术（视频分析服务器中的英伟达或英特尔芯片、"
              "警务平台中的美国品牌服务器或数据库、美国DNA测序设备）。",
    },
}
RECALL_AT_10_FLOOR = 0.90   # measured 1.00 evidence first (0.81 before it; dense alone: 0.69)
MRR_FLOOR = 0.90            # measured 1.00 evidence first (0.67 before it; dense alone: 0.51)


def labelled(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "labels.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]


def cross_language_metrics(engine: SearchEngine, folder: Path, k: int = 10) -> dict:
    """recall@k and MRR per (pattern, direction), and their means over the runs that have targets."""
    rows = labelled(folder)
    runs = {}
    for pattern, queries in QUERIES.items():
        for query_lang, target_lang in (("en", "zh"), ("zh", "en")):
            relevant = {r["url"] for r in rows if pattern in r["patterns"] and r["lang"] == target_lang}
            if not relevant:
                continue
            page = engine.search(queries[query_lang], SearchFilters(lang=target_lang), per_page=50)
            urls = [r.url for r in page.results]
            first = next((rank for rank, url in enumerate(urls, start=1) if url in relevant), None)
            runs[f"{pattern}:{query_lang}->{target_lang}"] = {
                "recall@10": round(len(relevant & set(urls[:k])) / min(len(relevant), k), 4),
                "rr": round(1 / first, 4) if first else 0.0, "relevant": len(relevant)}
    mean = {name: round(sum(r[key] for r in runs.values()) / len(runs), 4)
            for name, key in (("recall@10", "recall@10"), ("mrr", "rr"))}
    return {"runs": runs, **mean}


@pytest.fixture(scope="module")
def corpus_engine() -> SearchEngine:
    return engine_for(settings_for(ingested_corpus(DEV_CORPUS)))


@needs(DEV_CORPUS)
@pytest.mark.slow
def test_cross_language_queries_find_labelled_documents(corpus_engine: SearchEngine) -> None:
    result = cross_language_metrics(corpus_engine, DEV_CORPUS)
    print(json.dumps(result, indent=1))
    assert result["recall@10"] >= RECALL_AT_10_FLOOR, result
    assert result["mrr"] >= MRR_FLOOR, result


def evidence_report(engine: SearchEngine, queries: Path, labels: dict) -> dict:
    rankers = {name: rank for name, rank in rankers_for(engine).items() if name in (EVIDENCE, BASELINE)}
    return summary(evaluate(rankers, read_queries(queries), labels, document_urls(engine)))


@needs(DEV_CORPUS)
def test_evidence_comes_first_on_the_dev_corpus(corpus_engine: SearchEngine) -> None:
    labels = {label.url: label for _, label in read_folder(DEV_CORPUS)}
    report = evidence_report(corpus_engine, QUERY_SETS / "tuning.yaml", labels)
    print(json.dumps(report, indent=1))
    for lang, floor in (("en", 0.80), ("zh", 0.85)):          # measured 0.833 / 0.887
        mine, baseline = report[EVIDENCE][lang], report[BASELINE][lang]
        assert mine["precision@10"] >= floor, report
        assert mine["precision@10"] >= baseline["precision@10"] + 0.4, report
        assert mine["chinese_ok"] == mine["queries"], report


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[SearchEngine, dict]:
    settings = settings_for(tmp_path_factory.mktemp("held-out") / "home")
    labels = ingest_folders(settings, HELD_OUT)
    return engine_for(settings), labels


@pytest.mark.slow
def test_evidence_comes_first_on_pages_it_was_never_set_on(held_out: tuple[SearchEngine, dict]) -> None:
    engine, labels = held_out
    report = evidence_report(engine, QUERY_SETS / "queries.yaml", labels)
    print(json.dumps(report, indent=1))
    for lang in ("en", "zh"):                                   # measured 0.965 / 0.940 (README)
        mine, baseline = report[EVIDENCE][lang], report[BASELINE][lang]
        assert mine["precision@10"] >= 0.85 and mine["worst"] >= 0.5, report
        assert mine["precision@10"] >= baseline["precision@10"] + 0.4, report
        assert mine["chinese_ok"] == mine["queries"], report
