"""Document kind from the address and the wording: evidence needs a primary source.

A procurement notice, a vendor or reseller page and a marketplace listing can be evidence;
news, commentary and analysis about the same facts cannot. The kind is therefore decided
before any pattern is scored, from cues that are about the genre, not the topic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from extract.script import convert

KINDS = ("procurement-notice", "vendor-marketing", "cloud-listing", "reseller-ad", "news-commentary", "other")
EVIDENCE_KINDS = frozenset({"procurement-notice", "vendor-marketing", "cloud-listing", "reseller-ad"})

_URL_HINTS: dict[str, tuple[str, ...]] = {
    "procurement-notice": ("ccgp", "/cggg/", "ggzy", "zfcg", "ebid", "bidding", "tender", "caigou", "zbcg",
                           "zhaobiao", "procurement", "/zbgg", "/cgxx", "/rfq", "/itq", "/rfp"),
    "cloud-listing": ("marketplace", "/prodview-", "appsource"),
    # A company's newsroom is its own voice, dated paths or not.
    "vendor-marketing": ("/newsroom", "/press-release", "/press/", "/media-center", "/company-news", "/gsxw"),
    "news-commentary": ("/news/", "news.", "/article", "/opinion", "/blog/", "/insights/", "/commentary",
                        "/analysis/", "/publications/", "/content_", "/research/", "/reports/", "/story/",
                        "/stories/", "/features/", "/zcjd/", "/investigations/"),
    # Help and careers sections: manuals, guides and job ads are about a product or a cloud, not an offer.
    "other": ("/support/", "/manual", "/job/", "/jobs/", "/careers/", "/zhaopin/"),
}

_CUES: dict[str, tuple[tuple[str, float], ...]] = {
    "procurement-notice": (
        ("项目编号", 3), ("采购人", 2), ("采购单位", 2), ("预算金额", 3), ("招标公告", 3), ("采购需求", 2),
        ("供应商资格", 2), ("中标", 1.5), ("成交", 1), ("磋商", 2), ("单一来源", 2), ("询价", 1.5),
        ("采购代理机构", 3), ("开标", 2), ("投标", 1), ("采购意向", 2), ("响应文件", 2),
        ("request for quotation", 3), ("rfq", 2), ("invitation to bid", 3), ("tender", 1.5),
        ("bid submission", 2), ("procurement notice", 3), ("deadline for", 1), ("purchaser", 1.5),
        ("invitation to quote", 3), ("invitation for quotation", 3), ("request for proposal", 3),
        ("expression of interest", 2), ("quotations", 1.5), ("supplier requirements", 2), ("bidders", 1.5),
        ("tenderers", 1.5), ("closing date", 1.5), ("scope of work", 1.5), ("evaluation criteria", 1.5),
    ),
    "cloud-listing": (
        # "Marketplace" names the topic as often as the site (articles about listings say it too):
        # weak on its own; the listing's own furniture (plans, purchase buttons) decides.
        ("publisher", 1.5), ("pricing", 1), ("plans", 0.5), ("get it now", 3), ("marketplace", 1),
        ("deployable on", 2), ("software plans", 3), ("view purchase options", 3), ("continue to subscribe", 3),
        ("product overview", 1.5), ("consulting services", 1), ("delivery method", 2), ("fulfillment", 1.5),
        ("azure marketplace", 2), ("aws marketplace", 2), ("google cloud marketplace", 2), ("offer", 0.5),
    ),
    "reseller-ad": (
        ("购买", 1), ("价格", 1), ("元/月", 2), ("包月", 2), ("客服", 2), ("微信", 1.5), ("下单", 2),
        ("充值", 2), ("代理商", 1), ("库存", 1), ("销量", 2), ("现货", 1.5), ("套餐", 1.5), ("立即购买", 3),
        ("加入购物车", 3), ("咨询", 0.5), ("店铺", 2), ("buy now", 2), ("per month", 1), ("telegram", 2),
        ("whatsapp", 2), ("top-up", 2), ("in stock", 1.5), ("order now", 2), ("/month", 1), ("wechat", 1.5),
    ),
    "news-commentary": (
        ("记者", 2), ("据报道", 3), ("报道称", 3), ("责任编辑", 3), ("评论", 1), ("专家", 1), ("分析人士", 2),
        ("智库", 2), ("新华社", 2), ("观察", 0.5), ("本报讯", 3), ("reported", 1.5), ("according to", 1),
        ("analysts", 1.5), ("said in a statement", 2), ("told reporters", 2), ("op-ed", 3), ("commentary", 1.5),
        ("think tank", 2), ("policy brief", 3), ("client alert", 3), ("reuters", 2), ("bloomberg", 1.5),
        ("researchers found", 2), ("the report", 1), ("lawmakers", 2), ("congress", 1), ("share this", 1),
        ("byline", 1), ("min read", 2), ("editor", 1), ("subscribe to our newsletter", 1),
        # Reporting about a notice, not the notice: attribution and the right of reply.
        ("request for comment", 3), ("declined to comment", 3), ("did not respond", 2), ("seen by", 2),
        ("a copy of the notice", 3), ("said", 0.5), ("according to a", 1), ("legislators", 1.5),
        ("置评", 3), ("未予回应", 3), ("接受采访", 2), ("消息人士", 2), ("分析师", 1.5), ("报道", 1),
        ("据悉", 1.5), ("撰文", 2),
        # Analysis writes about the genre from outside: its sources, its findings, what policy should do.
        ("policymakers", 2), ("recommendations", 1.5), ("we recommend", 2), ("this report", 1.5),
        ("this paper", 2), ("our review", 1.5), ("loophole", 1.5), ("受访", 2), ("透露", 1.5),
        ("业内人士", 2), ("知情人士", 2), ("告诉", 1), ("多位", 1), ("日报", 1.5), ("周报", 1.5),
        ("时报", 1.5), ("漏洞", 1.5), ("政策建议", 2), ("研究报告", 1.5), ("解读", 1.5),
        ("methodology", 2), ("the author", 1.5), ("author's own", 2), ("rss", 1), ("we found", 1.5),
        ("作者", 1.5), ("原标题", 2), ("文章来源", 2), ("阅读量", 1.5), ("分享到", 1),
        ("in an interview", 2), ("did not comment", 2), ("experts say", 1.5), ("asked whether", 1.5),
        # Writing about sanctions from outside them; an offer or a notice rarely names the list.
        ("entity list", 1), ("it turns out", 1.5), ("实体清单", 1),
        # A self-media article (WeChat public account, blog) talks with its readers.
        ("原创", 1), ("阅读原文", 1.5), ("欢迎留言", 2), ("你怎么看", 2), ("粉丝", 1), ("what do you think", 2),
    ),
    "vendor-marketing": (
        ("解决方案", 1.5), ("产品", 0.5), ("联系销售", 2), ("了解更多", 1), ("客户案例", 1.5),
        ("solutions", 1), ("products", 0.5), ("contact sales", 2), ("learn more", 1), ("request a demo", 2),
        ("features", 0.5), ("datasheet", 1.5), ("key benefits", 1.5), ("case studies", 1),
        ("how it works", 1), ("get started", 1), ("our clients", 1), ("who we serve", 1.5), ("fapiao", 1.5),
        ("开具发票", 1.5), ("服务流程", 1.5), ("合作伙伴", 0.5), ("book a call", 1.5), ("book a demo", 1.5),
        ("contact us", 0.5), ("get in touch", 1), ("packages", 1), ("free trial", 1.5), ("免费试用", 1.5),
        ("立即咨询", 1.5), ("在线咨询", 1.5), ("联系我们", 0.5),
        # A company's own announcements are its marketing, however newsy their wording.
        ("公司新闻", 2), ("企业新闻", 2), ("新闻稿", 2), ("press release", 2), ("for immediate release", 3),
        ("media contact", 2), ("媒体联系", 2), ("today announced", 1.5),
        ("sign in", 0.5), ("start free", 1.5), ("按小时计费", 1), ("技术文档", 0.5),
    ),
    "other": (
        ("用户手册", 2), ("使用手册", 2), ("操作手册", 2), ("user manual", 2), ("岗位职责", 3), ("任职要求", 3),
        ("职位描述", 3), ("job description", 3), ("responsibilities", 1), ("qualifications", 1),
        ("薪资", 1.5), ("政策解读", 3), ("选型指南", 2), ("选购指南", 2),
    ),
}


def _cue_pattern(cue: str) -> re.Pattern[str]:
    """A Latin cue matches as whole words: "tenders" in an article about notices is not "tender",
    nor "procurement notices" a "procurement notice". Chinese has no word boundaries to use, but
    is written in Traditional characters too (Hong Kong, Taiwan): a Chinese cue also matches its
    Traditional forms, made once here rather than converting every page."""
    if cue.isascii():
        return re.compile(rf"(?<![a-z0-9]){re.escape(cue)}(?![a-z0-9])")
    forms = dict.fromkeys([cue, *(convert(cue, variant) for variant in ("zh-hant", "zh-tw", "zh-hk"))])
    return re.compile("|".join(re.escape(form) for form in forms))


_CUE_PATTERNS = {kind: [(_cue_pattern(cue), weight) for cue, weight in cues] for kind, cues in _CUES.items()}


def _cue_score(text: str, cues: Iterable[tuple[re.Pattern[str], float]]) -> float:
    return sum(weight * min(len(pattern.findall(text)), 3) for pattern, weight in cues)


def is_marketplace_url(url: str) -> bool:
    """A cloud marketplace's listing (AWS Marketplace, AppSource): a third party's offer on the
    cloud's own host, so the host does not make it the cloud's voice."""
    lowered = url.lower()
    return any(hint in lowered for hint in _URL_HINTS["cloud-listing"])


def kind_scores(text: str, url: str = "", title: str = "") -> dict[str, float]:
    """Score each kind; the body counts once, the title and address add direct hints."""
    lowered = (title + "\n" + text[:20000]).lower()
    scores = {kind: _cue_score(lowered, cues) for kind, cues in _CUE_PATTERNS.items()}
    url_lower = url.lower()
    for kind, hints in _URL_HINTS.items():
        if any(hint in url_lower for hint in hints):
            scores[kind] = scores.get(kind, 0.0) + 4.0
    if _DATED_PATH.search(url_lower):
        scores["news-commentary"] += 7.0
    return scores


# /2025/10/…: a publication's dated path. Listings, shops and notices are not filed by month, and a
# company's dated newsroom also carries its own newsroom hint.
_DATED_PATH = re.compile(r"/20\d\d/(?:0?[1-9]|1[0-2])/")


# Kinds of a page that offers something: weak cues of several of them together still make an offer.
SELLER_KINDS = ("vendor-marketing", "cloud-listing", "reseller-ad")


def classify_kind(text: str, url: str = "", title: str = "") -> str:
    """The kind with the strongest cues; a page whose seller cues are each weak but add up (a broker's
    one-page pitch) is the strongest seller kind, not ``other``."""
    return kind_from_scores(kind_scores(text, url, title))


def kind_from_scores(scores: dict[str, float]) -> str:
    """The kind that :func:`kind_scores` favours (see :func:`classify_kind`)."""
    # On a tie, reporting wins: an article quoting an ad is likelier than an ad with a byline.
    best = max(scores, key=lambda kind: (scores[kind], kind == "news-commentary"))
    if scores[best] >= 2.0:
        return best
    seller = max(SELLER_KINDS, key=lambda kind: scores[kind])
    return seller if sum(scores[kind] for kind in SELLER_KINDS) >= 2.0 else "other"
