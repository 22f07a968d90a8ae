"""Bytes in, a clean document out: charset, main text, title, date, language, kind, fields.

Public API: :func:`extract_page` and :class:`ExtractedPage`. Site selectors (CSS) that a
spider knows are tried before trafilatura's generic extraction, because a portal's own
template is more reliable than any heuristic.
"""

from extract.guards import UnusableContent, looks_binary
from extract.page import ExtractedPage, extract_page

__all__ = ["ExtractedPage", "UnusableContent", "extract_page", "looks_binary"]
