"""Block pages: portals answer crawlers with HTTP 200 pages that look like success.

A block page is never stored as content; the crawl marks the source degraded instead. It is
told by its shape, not by a word: little text, and a challenge (a block page's own title, a
captcha or bot-check widget in the markup, or a sentence that is nothing but the challenge).
A real page that mentions 验证码 (an account shop selling phone verification, a tender whose
bidders log in with a code) has text of its own and is content.
"""

from __future__ import annotations

# Text a challenge page consists of. Counted only when the page has almost no other text.
_BLOCK_CUES = (
    ("频繁访问", "rate limited (频繁访问)"), ("访问过于频繁", "rate limited (访问过于频繁)"),
    ("验证码", "captcha (验证码)"), ("请开启JavaScript", "JavaScript wall (请开启JavaScript)"),
    ("请启用JavaScript", "JavaScript wall (请启用JavaScript)"), ("安全验证", "bot check (安全验证)"),
    ("人机验证", "bot check (人机验证)"), ("Just a moment...", "bot-check interstitial"),
    ("Checking your browser", "bot-check interstitial"), ("Access Denied", "access denied"),
    ("are you a robot", "captcha"), ("Please enable JavaScript", "JavaScript wall"),
    ("Attention Required!", "bot-check interstitial"), ("Request unsuccessful. Incapsula", "bot-check interstitial"),
)
# Titles interstitials give themselves: the whole title, not a word in a longer one.
_BLOCK_TITLES = ("访问验证", "安全验证", "人机验证", "验证码", "请稍候", "访问受限", "访问被拒绝", "系统繁忙",
                 "just a moment...", "attention required! | cloudflare", "access denied", "security check",
                 "are you a robot?", "403 forbidden", "请输入验证码")
# Markup of challenge, captcha and bot-check widgets (Cloudflare, reCAPTCHA, hCaptcha, GeeTest,
# Tencent and Aliyun captchas, Incapsula, Akamai).
_CHALLENGE_MARKUP = ("challenge-form", "cf-challenge", "cf_chl_", "cf-browser-verification", "g-recaptcha",
                     "h-captcha", "geetest_", "tencentcaptcha", "nc_1_wrapper", "aliyun_waf", "_incapsula_resource",
                     "_abck", "captcha-container", "slide-verify", "/cdn-cgi/challenge-platform/")
MIN_TEXT_CHARS = 40
CHALLENGE_TEXT_CHARS = 120    # a challenge page says a sentence or two; a page with more is content
SHORT_PAGE_CHARS = 1500       # longer pages are content whatever their title or markup


def block_reason(text: str, title: str = "", html: str = "") -> str | None:
    """Why this page is not content, or None."""
    body = (title + "\n" + text).strip()
    if len(body) > SHORT_PAGE_CHARS:
        return None
    if len(body) <= CHALLENGE_TEXT_CHARS:   # the challenge's own words say best what it is
        lowered = body.lower()
        for cue, reason in _BLOCK_CUES:
            if cue.lower() in lowered:
                return reason
    lowered_title = title.strip().lower()
    if lowered_title and any(lowered_title == cue or lowered_title.startswith(cue) for cue in _BLOCK_TITLES):
        return f"block page title ({title.strip()[:40]})"
    markup = html[:200_000].lower()
    widget = next((marker for marker in _CHALLENGE_MARKUP if marker in markup), None)
    if widget:
        return f"challenge markup ({widget})"
    return "empty shell (no text)" if len(body) < MIN_TEXT_CHARS else None
