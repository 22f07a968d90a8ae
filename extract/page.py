"""The extraction entry point used by the pipeline."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

import trafilatura
from lxml import etree
from lxml import html as lxml_html
from parsel import Selector

from extract.blocks import block_reason
from extract.charset import decode_html
from extract.feed import FEED_LAYOUT, feed_document, looks_like_feed
from extract.fields import parse_procurement_fields
from extract.guards import UnusableContent, looks_binary
from extract.jsondoc import json_page, names_json_paths
from extract.kind import SELLER_KINDS, kind_from_scores, kind_scores
from extract.language import detect_language

_DATE = re.compile(r"(20\d\d|19\d\d)\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})")


@dataclass
class ExtractedPage:
    text: str
    title: str
    date: str | None
    lang: str
    kind: str
    encoding: str
    fields: dict = field(default_factory=dict)
    site: str = ""                     # the site's own name (og:site_name, or <title> after the page's)
    genre: dict[str, float] = field(default_factory=dict)   # each kind's cue score (extract.kind.kind_scores)
    own_site: bool = False             # served from a named company's own site (set by the pipeline)
    provider_site: bool = False        # that company is a US cloud, model or chip provider (its docs, its pricing)

    def entity_text(self) -> str:
        """The text whose names say who and what the page is about. On a seller's page the site
        counts too: a listing on "AWS Marketplace" is sold through AWS even when its body only
        gives region codes; on a portal or a newspaper the site is no party to what it prints."""
        site = self.site if self.kind in SELLER_KINDS else ""
        return "\n".join(part for part in (self.title, site, self.text) if part)


def normalise_date(value: str | None) -> str | None:
    """First date in the string as YYYY-MM-DD (Chinese and ISO forms)."""
    match = _DATE.search(value or "")
    if not match:
        return None
    year, month, day = (int(part) for part in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return f"{year:04d}-{month:02d}-{day:02d}"


def _fragment_text(fragment_html: str) -> str:
    text = trafilatura.extract(f"<html><body>{fragment_html}</body></html>", include_tables=True,
                               favor_recall=True, include_comments=False)
    if text:
        return text
    return lxml_html.fromstring(fragment_html).text_content().strip() if fragment_html.strip() else ""


def _by_selectors(page: Selector, selectors: dict[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in ("title", "date"):
        css = selectors.get(name)
        value = " ".join(page.css(css).xpath("string()").getall()).strip() if css else ""
        if value:
            found[name] = re.sub(r"\s+", " ", value)
    body_parts = [_fragment_text(part) for part in page.css(selectors["body"]).getall()] if "body" in selectors else []
    body = "\n".join(part for part in body_parts if part)
    if body:
        found["text"] = body
    return found


def _generic(html_text: str, url: str) -> dict[str, str]:
    doc = trafilatura.bare_extraction(html_text, url=url or None, include_tables=True, favor_recall=True,
                                      with_metadata=True, include_comments=False)
    if doc is None or isinstance(doc, dict):
        return {}
    return {key: value for key, value in (("text", doc.text), ("title", doc.title), ("date", doc.date)) if value}


# Compiled once, and run on the lxml tree directly: parsel's ``xpath()`` compiles the expression
# and wraps every text node in a Selector on each call, which the block-page check paid per page.
_VISIBLE_TEXT = etree.XPath("//body//text()[not(ancestor::script) and not(ancestor::style)]", smart_strings=False)


def visible_text(page: Selector) -> str:
    """All visible text including the site chrome: genre cues (nav, cart, byline) live there."""
    root = page.root
    if not isinstance(root, etree._Element):  # noqa: SLF001 - a JSON or text selector has no body
        return ""
    parts = (part.strip() for part in _VISIBLE_TEXT(root))
    return " ".join(part for part in parts if part)


_TITLE_PARTS = re.compile(r"\s+[-|–—_]\s+|\s*_\s*|\s*\|\s*")


def _title_parts(html_title: str) -> list[str]:
    """A ``<title>``'s parts: "page - site", "page_site", "page | site"."""
    return [part.strip() for part in _TITLE_PARTS.split(html_title) if part.strip()]


def page_title(extracted: str, html_title: str) -> str:
    """The page's own title. Trafilatura may take a portal's logo heading ("广东省政府采购网") for
    it; when that is the last part of the ``<title>`` ("某项目磋商公告 - 广东省政府采购网": page,
    then site, as most sites write it), the parts before it hold the page's own title, and a
    notice's title names its buyer and subject."""
    extracted = extracted.strip()
    parts = _title_parts(html_title)
    if extracted and len(parts) > 1 and extracted == parts[-1]:
        return max(parts[:-1], key=len)
    return extracted or html_title


def site_name(page: Selector, html_title: str, title: str) -> str:
    """The site's name: og:site_name, else the last part of a ``<title>`` that is not the page's own."""
    declared = page.css('meta[property="og:site_name"]::attr(content)').get(default="").strip()
    if declared:
        return declared
    parts = _title_parts(html_title)
    return parts[-1] if len(parts) > 1 and parts[-1] != title else ""


def _html_title(page: Selector) -> str:
    return re.sub(r"\s+", " ", page.css("title::text").get(default="")).strip()


def warm_up() -> None:
    """Pay the first extraction's one-off cost (htmldate/dateparser compile ~200 locales' regexes:
    20 s or more on a busy machine) before a crawl starts, not inside the reactor mid-crawl,
    where it would stall every download in flight and can trip their timeouts."""
    with contextlib.suppress(UnusableContent):
        extract_page("<html><head><title>warm-up</title></head><body><p>发布日期：2026年1月1日。"
                     "This paragraph only warms up the date and text extractors.</p></body></html>".encode())


def extract_page(body: bytes, url: str = "", content_type: str | None = None,
                 selectors: dict[str, str] | None = None) -> ExtractedPage:
    """Extract one page; raises UnusableContent for binary bodies, block pages and empty shells."""
    if looks_binary(body):
        raise UnusableContent("binary content served as a page")
    if names_json_paths(selectors):
        (html_text, selectors), encoding = json_page(body, selectors or {}), "utf-8"
    elif looks_like_feed(body, content_type):   # RSS/Atom: trafilatura finds no HTML tree in a feed
        (html_text, encoding), selectors = feed_document(body), dict(FEED_LAYOUT)
    else:
        html_text, encoding = decode_html(body, content_type)
    page = Selector(text=html_text) if html_text.strip() else Selector(text="<html></html>")
    generic = _generic(html_text, url)
    chosen = {**generic, **_by_selectors(page, selectors or {})}
    text = chosen.get("text", "")
    html_title = _html_title(page)
    title = page_title(chosen.get("title", ""), html_title)
    reason = block_reason(text, title, html_text)
    if reason:
        raise UnusableContent(reason)
    lang = detect_language(title + "\n" + text)
    genre = kind_scores(visible_text(page) or text, url, title)
    kind = kind_from_scores(genre)
    fields = parse_procurement_fields(text, title, page).as_dict() if kind == "procurement-notice" else {}
    return ExtractedPage(text=text, title=title, date=normalise_date(chosen.get("date")), lang=lang,
                         kind=kind, encoding=encoding, fields=fields, site=site_name(page, html_title, title),
                         genre=genre)
