"""Real pages kept in public repositories, scored where they lie: read from local git mirrors, never copied.

Why: the search tool's stored web pages may not be copied verbatim, so the project keeps no real page's text, not
even in a git-ignored folder. A page kept in a public repository can still be read from a git mirror of that
repository on this machine (the tool library's `fetch` makes one), at the commit it was labelled at. A labels
file lists each page's repository, path, commit, address and label; the page's Markdown is rendered to HTML in
memory, as the repository's host shows it, and scored like any labelled folder (loophole.evaluate).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from html import escape
from pathlib import Path

# markdown-it-py (a dependency of rich): GitHub renders Markdown as CommonMark with tables
from markdown_it import MarkdownIt

from ground.config import ConfigError, Settings
from loophole.evaluate import Label, Outcome, evaluate_pages, read_json_lines

GIT_SECONDS = 60
REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")
COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class RepoPage:
    repo: str            # owner/name
    path: str            # the file in the repository
    commit: str          # the commit it was labelled at
    label: Label
    collection: int = 0


def read_repo_labels(path: Path) -> list[RepoPage]:
    """One JSON object per line: repo, path, commit, url, kind, lang, patterns (and collection, genre, note)."""
    if not path.is_file():
        raise ConfigError(f"{path}: missing (a list of repository pages, one JSON object per line)")
    return read_json_lines(path, "repository page", _repo_page)


def _repo_page(row: dict) -> RepoPage:
    """The repository and commit go to git: only an owner/name and a full commit id are taken (a value starting
    with "-" would be read as an option)."""
    if not REPO.fullmatch(row["repo"]) or not COMMIT.fullmatch(row["commit"]):
        raise ValueError(f"repo must be OWNER/NAME and commit 40 hex digits, not {row['repo']!r}, {row['commit']!r}")
    label = Label(row["url"], row["url"], row["kind"], set(row["patterns"]))
    return RepoPage(row["repo"], row["path"], row["commit"], label, int(row.get("collection", 0)))


def git_dir(mirrors: Path, repo: str) -> Path:
    """The repository's git directory under ``mirrors``: `fetch` leaves a bare one at OWNER+NAME/repo, or a work
    tree there with its .git inside."""
    place = mirrors / repo.replace("/", "+") / "repo"
    return place / ".git" if (place / ".git").is_dir() else place


def read_page(mirrors: Path, page: RepoPage) -> bytes | None:
    """The file at its labelled commit, or None when the mirror or that commit is not here."""
    where = git_dir(mirrors, page.repo)
    if not where.is_dir():
        return None
    try:
        done = subprocess.run(["git", "--git-dir", str(where), "show", f"{page.commit}:{page.path}"],
                              capture_output=True, check=False, timeout=GIT_SECONDS)
    except FileNotFoundError as exc:
        raise ConfigError("reading pages from git mirrors needs git on the PATH") from exc
    except subprocess.TimeoutExpired:
        return None
    return done.stdout if done.returncode == 0 else None


def as_page(path: str, body: bytes) -> bytes:
    """A Markdown file as its host renders it: HTML written inside the Markdown stays text, as nothing a page
    brings may run. Other files are taken as they are."""
    if not path.lower().endswith((".md", ".markdown")):
        return body
    text = body.decode("utf-8", errors="replace")
    title = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), path)
    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{escape(title)}</title></head>'
            f"<body><article>{html}</article></body></html>").encode()


def evaluate_repo_pages(labels_file: Path, mirrors: Path, base: Settings, extra_patterns: list[Path] | None = None,
                        progress: bool = False, generic: bool = False) -> tuple[dict, list[Outcome], list[RepoPage]]:
    """Every listed page whose mirror is here, scored; and the pages left out (no mirror, or no such commit)."""
    pages = read_repo_labels(labels_file)
    bodies = {page.label.url: read_page(mirrors, page) for page in pages}
    present = {page.label.url: page for page in pages if bodies[page.label.url] is not None}
    missing = [page for page in pages if page.label.url not in present]
    result, outcomes = evaluate_pages([page.label for page in present.values()],
                                      lambda label: as_page(present[label.url].path, bodies[label.url] or b""),
                                      base, extra_patterns, progress, generic)
    return result, outcomes, missing
