"""The command line: eval's JSON contract, clear errors for bad configuration and pattern files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ground.config import Settings
from index.decision import read_decision, save_decision
from tests.conftest import ROOT, cli_env

PAGE = ("<html><head><meta charset='utf-8'><title>{t}</title></head><body><h1>{t}</h1><p>{b}</p>"
        "<p>项目编号：T-1 采购人：某单位 预算金额：10万元。本项目为政府采购项目，欢迎合格供应商参加。</p></body></html>")


def run(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loophole.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=cli_env(home, **env))


def labelled_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    pages = {
        "a.html": ("沅州市某局采购卫星遥感影像判读服务公告", "采购卫星遥感影像智能判读服务，调用海外卫星影像平台数据接口，按景计费。", ["satellite-imagery"]),
        "b.html": ("沅州市某局采购办公家具公告", "采购办公桌椅一批，木质材料，交货期三十天，质保三年。", []),
    }
    lines = []
    for name, (title, body, patterns) in pages.items():
        (folder / name).write_text(PAGE.format(t=title, b=body), encoding="utf-8")
        kind = "other" if patterns else "procurement-notice"     # labelled kinds need not be what the guess says
        lines.append(json.dumps({"file": name, "url": f"http://127.0.0.1/{name}", "kind": kind,
                                 "lang": "zh", "patterns": patterns}, ensure_ascii=False))
    (folder / "labels.jsonl").write_text("\n".join(lines), encoding="utf-8")
    return folder


NEW_PATTERN = """version: "test-1"
patterns:
  - id: satellite-imagery
    title: Satellite imagery interpretation bought from abroad
    description: A buyer procures interpretation of satellite imagery from an overseas platform.
    examples:
      - 采购卫星遥感影像智能判读服务，数据来自境外卫星影像平台接口。
      - Procurement of satellite image interpretation through an overseas imagery platform API.
    counter_examples:
      - 采购办公桌椅一批。
    keywords: [卫星, 遥感, satellite]
"""


def test_eval_json_contract_and_runtime_pattern_file(tmp_path: Path) -> None:
    folder = labelled_folder(tmp_path)
    patterns = tmp_path / "new.yaml"
    patterns.write_text(NEW_PATTERN, encoding="utf-8")
    completed = run(["eval", str(folder), "--patterns", str(patterns), "--json"], tmp_path / "home")
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert set(result) == {"documents", "alert", "patterns", "macro_f1", "alerts_by_kind"}
    assert result["documents"] == 2
    assert set(result["alert"]) == {"precision", "recall", "f1", "tp", "fp", "fn"}
    assert result["patterns"]["satellite-imagery"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert result["alerts_by_kind"] == {"other": 1}, "flagged documents counted by their labelled kind"
    assert not (tmp_path / "home").exists(), "eval must not touch the user's data directory"


def test_eval_generic_keeps_the_contract_and_names_a_broken_decision_file(tmp_path: Path) -> None:
    """--generic decides every pattern by the generic weights; a damaged decision file in the data
    directory is named, not a traceback."""
    folder = labelled_folder(tmp_path)
    completed = run(["eval", str(folder), "--generic", "--json"], tmp_path / "home")
    assert completed.returncode == 0, completed.stderr
    assert set(json.loads(completed.stdout)) == {"documents", "alert", "patterns", "macro_f1", "alerts_by_kind"}
    home = tmp_path / "home2"
    home.mkdir()
    (home / "decision.yaml").write_text("model_id: m\nfeatures: [a]\n", encoding="utf-8")
    broken = run(["eval", str(folder), "--generic", "--json"], home)
    assert broken.returncode != 0 and "invalid decision file" in broken.stderr, broken.stderr


def test_eval_prints_false_alarms_and_news_alerts(tmp_path: Path) -> None:
    """The reader's figures beside P and R: false alarms per 100 pages without evidence, and which news
    pages alerted (here the page without evidence is labelled news and the new pattern alerts on it)."""
    folder = labelled_folder(tmp_path)
    rows = [json.loads(line) for line in (folder / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    (folder / "labels.jsonl").write_text("\n".join(json.dumps({**row, "kind": "news-commentary", "patterns": []})
                                                   if row["file"] == "a.html" else json.dumps(row) for row in rows),
                                         encoding="utf-8")
    patterns = tmp_path / "new.yaml"
    patterns.write_text(NEW_PATTERN, encoding="utf-8")
    completed = run(["eval", str(folder), "--patterns", str(patterns)], tmp_path / "home")
    assert completed.returncode == 0, completed.stderr
    printed = " ".join(completed.stdout.split())
    assert "false alarms per 100 negatives 50.0 news alerts 1 (a.html)" in printed
    assert "confidence of the scores: Brier" in printed, "what a score means on this folder is printed too"


def test_eval_reads_repository_pages_in_place_from_git_mirrors(tmp_path: Path) -> None:
    """--mirrors: the labelled pages are files in git repositories, read at their commits from mirrors on this
    machine (real pages that may not be copied; loophole.repo_pages); a page without a mirror is left out and said."""
    repo = tmp_path / "mirrors" / "owner+relay" / "repo"
    repo.mkdir(parents=True)
    (repo / "README.md").write_text("# 某服务\n\n采购办公桌椅一批，木质材料，交货期三十天。\n", encoding="utf-8")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "README.md"], check=True)
    subprocess.run([*git, "commit", "-qm", "page"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    rows = [{"repo": "owner/relay", "path": "README.md", "commit": commit, "url": "https://github.com/owner/relay",
             "kind": "other", "lang": "zh", "patterns": []},
            {"repo": "owner/gone", "path": "README.md", "commit": commit, "url": "https://github.com/owner/gone",
             "kind": "other", "lang": "zh", "patterns": []}]
    labels = tmp_path / "repos.jsonl"
    labels.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    completed = run(["eval", str(labels), "--mirrors", str(tmp_path / "mirrors"), "--json"], tmp_path / "home")
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["documents"] == 1
    printed = run(["eval", str(labels), "--mirrors", str(tmp_path / "mirrors")], tmp_path / "home")
    assert "1 listed pages have no mirror or commit" in printed.stderr, printed.stderr
    for bad in ({"repo": "owner/relay"}, {**rows[0], "commit": "--output=/tmp/x"}):
        labels.write_text(json.dumps(bad), encoding="utf-8")
        broken = run(["eval", str(labels), "--mirrors", str(tmp_path / "mirrors")], tmp_path / "home")
        assert broken.returncode != 0 and "bad repository page line" in broken.stderr, broken.stderr


def test_malformed_pattern_file_names_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("patterns:\n  - id: ok-id\n    title: t\n    description: d\n    examples: []\n", encoding="utf-8")
    completed = run(["eval", str(labelled_folder(tmp_path)), "--patterns", str(bad)], tmp_path / "home")
    assert completed.returncode == 2
    assert f"{bad}:5: field patterns.0.examples" in completed.stderr


def test_yaml_syntax_error_in_config_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("smtp:\n  host: [unclosed\n", encoding="utf-8")
    completed = run(["docs"], tmp_path / "home", LOOPHOLE_CONFIG=str(config))
    assert completed.returncode == 2
    assert str(config) in completed.stderr and "YAML error" in completed.stderr


def test_unknown_config_field_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("smtp:\n  hots: mail.example.org\n", encoding="utf-8")
    completed = run(["docs"], tmp_path / "home", LOOPHOLE_CONFIG=str(config))
    assert completed.returncode == 2 and "smtp.hots" in completed.stderr


def test_ingest_and_search_across_languages(tmp_path: Path) -> None:
    folder = labelled_folder(tmp_path)
    home = tmp_path / "home"
    assert run(["ingest", str(folder)], home).returncode == 0
    completed = run(["search", "satellite image interpretation", "--json"], home)
    results = json.loads(completed.stdout)
    assert results[0]["url"] == "http://127.0.0.1/a.html"
    assert {"url", "title", "score", "passages"} <= set(results[0])


SELLER = ("某某API中转站 国内直连", "本站提供 OpenAI GPT-4o 与 Claude API 中转服务，国内直连无需翻墙，支付宝、微信充值，人民币计价，"
          "价格为官方七折，注册即送额度，客服微信在线，支持开具发票。")
FURNITURE = ("沅州市某局采购办公家具公告", "采购办公桌椅一批，木质材料，交货期三十天，质保三年。")


def test_recalibrate_writes_the_rescaling_into_the_data_directory(tmp_path: Path) -> None:
    """`loophole recalibrate` fits how much a score was worth on labelled pages (here labels that disagree with
    the scores both ways, as real pages do) and writes it into the data directory's decision file, where eval and the
    monitor read it (that the same pages alert is tests/test_detection.py's)."""
    folder = tmp_path / "real"
    folder.mkdir()
    pages = [(SELLER, ["reseller-intermediary"]), (SELLER, ["reseller-intermediary"]), (SELLER, []),
             (FURNITURE, ["reseller-intermediary"]), (FURNITURE, []), (FURNITURE, [])]
    lines = []
    for number, ((title, body), patterns) in enumerate(pages):
        (folder / f"{number}.html").write_text(f"<html><head><meta charset='utf-8'><title>{title}</title></head>"
                                              f"<body><h1>{title}</h1><p>{body}</p></body></html>", encoding="utf-8")
        lines.append(json.dumps({"file": f"{number}.html", "url": f"http://127.0.0.1/{number}", "kind": "other",
                                 "lang": "zh", "patterns": patterns}))
    (folder / "labels.jsonl").write_text("\n".join(lines), encoding="utf-8")
    home = tmp_path / "home"
    # A pattern decided by a stage is not rescaled (tests/test_calibrate.py): the rescaling is shown on the weights alone.
    unstaged = read_decision(Settings().decision_file).model_copy(update={"stages": {}})
    save_decision(home / "decision.yaml", unstaged)
    fitted = run(["recalibrate", str(folder), "--min-evidence", "2"], home)
    assert fitted.returncode == 0, fitted.stderr
    shipped = unstaged.cut_for("reseller-intermediary")
    assert "reseller-intermediary" in fitted.stdout and f"cut {shipped:.3f} -> " in fitted.stdout, fitted.stdout
    written = read_decision(home / "decision.yaml")
    assert written.recalibration["reseller-intermediary"].pages == 6
    assert written.cut_for("reseller-intermediary") != shipped


def test_recalibrate_stage_fits_a_stage_and_a_real_page_text_model_into_the_data_directory(tmp_path: Path) -> None:
    """`loophole recalibrate LIST --mirrors DIR --stage PATTERN --written FOLDER`: real pages read in place, held out
    by collection, and written pages the stage must hold on; the decision and text models land in the data
    directory. Without --written, a clear error and nothing written."""
    repo = tmp_path / "mirrors" / "owner+pages" / "repo"
    repo.mkdir(parents=True)
    kinds = [(SELLER, True), (SELLER, True), (SELLER, True), (SELLER, False), (FURNITURE, False), (FURNITURE, False)]
    rows, written_lines = [], []
    written = tmp_path / "written"
    written.mkdir()
    for number, ((title, body), truth) in enumerate(kinds * 2):
        (repo / f"{number}.md").write_text(f"# {title}\n\n{body}\n", encoding="utf-8")
        rows.append({"path": f"{number}.md", "url": f"https://github.com/owner/pages/blob/HEAD/{number}.md",
                     "kind": "other", "lang": "zh", "patterns": ["reseller-intermediary"] if truth else [],
                     "collection": 1 + number // len(kinds)})
        (written / f"{number}.html").write_text(f"<html><head><meta charset='utf-8'><title>{title}</title></head>"
                                               f"<body><h1>{title}</h1><p>{body}</p></body></html>", encoding="utf-8")
        written_lines.append(json.dumps({"file": f"{number}.html", "url": f"http://127.0.0.1/{number}",
                                         "kind": "other", "lang": "zh", "patterns": rows[-1]["patterns"]}))
    (written / "labels.jsonl").write_text("\n".join(written_lines), encoding="utf-8")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for step in (["init", "-q"], ["add", "."], ["commit", "-qm", "pages"]):
        subprocess.run([*git, *step], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    labels = tmp_path / "repos.jsonl"
    labels.write_text("\n".join(json.dumps({"repo": "owner/pages", "commit": commit, **row}) for row in rows),
                      encoding="utf-8")
    home = tmp_path / "home"
    args = ["recalibrate", str(labels), "--mirrors", str(tmp_path / "mirrors"), "--stage", "reseller-intermediary"]
    refused = run(args, home)
    assert refused.returncode != 0 and "--written" in refused.stderr and not (home / "decision.yaml").exists()
    fitted = run([*args, "--written", str(written)], home)
    assert fitted.returncode == 0, fitted.stderr
    assert "held out by collection" in fitted.stdout, fitted.stdout
    stage = read_decision(home / "decision.yaml").stages["reseller-intermediary"]
    assert stage.inputs == ["log_odds", "real_text"] and stage.evidence > 0
    assert (home / "text_models.npz").exists()
