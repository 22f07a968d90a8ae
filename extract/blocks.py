"""Block pages: portals answer crawlers with HTTP 200 pages that look like success.

A block page is never stored as content; the crawl marks the source degraded instead.
"""

from __future__ import annotations

_BLOCK_CUES = (
    ("频繁访问", "rate limited (频繁访问)"), ("访问过于频繁", "rate limited (访问过于频繁)"),
    ("验证码", "captcha (验证码)"), ("请开启JavaScript", "JavaScript wall (请开启JavaScript)"),
    ("请启用JavaScript", "JavaScript wall (请启用JavaScript)"), ("安全验证", "bot check (安全验证)"),
    ("人机验证", "bot check (人机验证)"), ("Just a moment...", "bot-check interstitial"),
    ("Checking your browser", "bot-check interstitial"), ("Access Denied", "access denied"),
    ("are you a robot", "captcha"), ("Please enable JavaScript", "JavaScript wall"),
    ("Attention Required!", "bot-check interstitial"), ("Request unsuccessful. Incapsula", "bot-check interstitial"),
)
MIN_TEXT_CHARS = 40


def block_reason(text: str, title: str = "") -> str | None:
    """Why this page is not content, or None. Cues only count on short pages: a long notice
    that mentions 验证码 in its instructions is still a notice."""
    body = (title + "\n" + text).strip()
    if len(body) > 1500:
        return None
    lowered = body.lower()
    for cue, reason in _BLOCK_CUES:  # before the length test, so a short captcha page says "captcha"
        if cue.lower() in lowered:
            return reason
    return "empty shell (no text)" if len(body) < MIN_TEXT_CHARS else None
