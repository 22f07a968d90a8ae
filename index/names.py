"""Organisation names made comparable: folded, legal forms dropped, Chinese read as pinyin and
glossed, so that a Chinese name in a notice can be set against an English listed name.

Why a glossary: a listed Chinese party's English name is part transliteration (the brand and
the place: 云泽 -> Yunze, 长沙 -> Changsha) and part translation (科技 -> Technology, 研究院 ->
Research Institute). pypinyin reads the first; the second needs the words organisation names
are made of, which are few. The glossary only says what a word means; it never decides a match
by itself (index.screening wants the distinctive, transliterated part to agree).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import jieba
from pypinyin import lazy_pinyin

from index.entities import fold

jieba.setLogLevel(60)

# Legal forms and joining words: never what tells two organisations apart.
LEGAL_FORMS = frozenset({
    "co", "ltd", "limited", "inc", "incorporated", "corp", "corporation", "company", "companies", "llc", "llp",
    "jsc", "ojsc", "pjsc", "cjsc", "ooo", "ao", "zao", "oao", "gmbh", "sa", "plc", "pte", "pvt", "bv", "nv", "ag",
    "kg", "sarl", "srl", "spa", "the", "of", "and", "for", "a", "an", "de", "la", "s", "l",
})
# Words many organisations share: they must agree, but they do not make two names one.
GENERIC = frozenset({
    "china", "chinese", "prc", "hk", "beijing", "shanghai", "shenzhen", "guangzhou", "tianjin", "international",
    "intl", "technology", "technologies", "tech", "science", "sciences", "scientific", "development", "group",
    "holding", "holdings", "industrial", "industries", "industry", "products", "product", "trade", "trading",
    "import", "export", "electronics", "electronic", "electric", "electrical", "information", "info", "engineering",
    "research", "institute", "university", "academy", "college", "center", "centre", "national", "aerospace",
    "space", "systems", "system", "network", "networks", "communication", "communications", "equipment",
    "machinery", "materials", "digital", "software", "services", "service", "enterprise", "enterprises",
    "shareholding", "stock", "joint", "new", "high", "city", "province", "provincial", "municipal", "bureau",
    "department", "ministry", "office", "branch", "laboratory", "lab", "key", "state", "general", "public",
    "security", "defense", "defence", "semiconductor", "computer", "computing", "intelligent", "intelligence",
    "data", "cloud", "optical", "optics", "photonics", "instruments", "instrument", "precision", "manufacturing",
    "energy", "power", "investment", "consulting", "management", "no", "east", "west", "north", "south", "asia",
    "global", "world", "pacific", "offices", "plant", "microelectronics", "vision", "medical",
    "aviation", "satellite", "navigation", "physics", "chemistry", "nuclear", "shares", "sci", "tec",
    # places that many PRC names begin with: a branch in another city is a different party, but the
    # place alone does not tell two parties apart (the Chinese side checks its own place; index.screening)
    "changsha", "wuhan", "nanjing", "hangzhou", "chengdu", "chongqing", "xian", "harbin", "hefei", "jinan",
    "qingdao", "dalian", "shenyang", "suzhou", "xiamen", "fuzhou", "zhengzhou", "kunming", "guangdong", "jiangsu",
    "zhejiang", "hunan", "hubei", "sichuan", "shandong", "fujian", "hebei", "henan", "anhui", "shaanxi", "macau",
    "taiwan", "singapore",
})
# Chinese words of organisation names and their English renderings (the first is the usual one).
GLOSSARY: dict[str, tuple[str, ...]] = {
    "中国": ("china", "chinese"), "中华": ("china",), "香港": ("hk", "hong", "kong"), "澳门": ("macau",),
    "国家": ("national", "state"), "国际": ("international",), "全球": ("global",), "亚洲": ("asia",),
    "科技": ("technology", "science"), "技术": ("technology", "technologies", "tec"), "科学": ("science", "sciences"),
    "信息": ("information", "info"), "电子": ("electronics", "electronic"), "电气": ("electric",),
    "通信": ("communications", "communication"), "通讯": ("communications",), "网络": ("network", "networks"),
    "软件": ("software",), "系统": ("systems", "system"), "工程": ("engineering",), "工业": ("industrial", "industry"),
    "实业": ("industrial", "industries"), "发展": ("development",), "开发": ("development",),
    "研究所": ("research", "institute"), "研究院": ("research", "institute", "academy"), "研究": ("research",),
    "中心": ("center", "centre"), "大学": ("university",), "学院": ("college", "academy", "institute"),
    "科学院": ("academy", "sciences"), "集团": ("group",), "控股": ("holdings", "holding"),
    "贸易": ("trade", "trading"), "商贸": ("trade", "trading"), "进出口": ("import", "export"), "进口": ("import",),
    "出口": ("export",), "航天": ("aerospace", "space"), "航空": ("aviation", "aeronautics"),
    "宇航": ("aerospace", "astronautics"), "空间": ("space",), "光电": ("photonics", "optoelectronics"),
    "光子": ("photonics",), "光学": ("optics", "optical"), "激光": ("laser",), "半导体": ("semiconductor",),
    "微电子": ("microelectronics",), "计算机": ("computer",), "计算": ("computing",),
    "智能": ("intelligent", "intelligence"), "人工智能": ("artificial", "intelligence"), "数据": ("data",),
    "数字": ("digital",), "设备": ("equipment",), "成套设备": ("plant", "equipment"), "仪器": ("instruments",),
    "材料": ("materials",), "能源": ("energy",), "国防": ("national", "defense"), "防务": ("defense",),
    "兵器": ("ordnance",), "船舶": ("shipbuilding",), "核": ("nuclear",), "物理": ("physics",), "化学": ("chemistry",),
    "机械": ("machinery",), "制造": ("manufacturing",), "精密": ("precision",), "公安": ("public", "security"),
    "公安局": ("public", "security", "bureau"), "安全": ("security",), "局": ("bureau",), "部": ("ministry",),
    "厅": ("department",), "委员会": ("commission",), "服务": ("services",), "咨询": ("consulting",),
    "投资": ("investment",), "管理": ("management",), "卫星": ("satellite",), "导航": ("navigation",),
    "无人机": ("uav", "drone"), "雷达": ("radar",), "医疗": ("medical",), "生物": ("biological",),
    "视觉": ("vision",), "动力": ("power",), "装备": ("equipment",), "产品": ("products",), "新": ("new",),
    "高": ("high",), "新技术": ("new", "technology"), "高新": ("high", "new"), "实验室": ("laboratory", "lab"),
    "重点": ("key",), "股份": ("shares", "shareholding"), "分公司": ("branch",), "办事处": ("office",),
    "第": ("no",), "省": ("province",), "市": ("city",), "总": ("general",), "平台": ("platform",),
    "电力": ("power", "electric"), "能": ("energy",), "光": ("optical",), "电": ("electric",),
}
# Forms of incorporation at the end of Chinese names, longest first.
HAN_LEGAL_SUFFIXES = ("股份有限公司", "有限责任公司", "有限公司", "公司")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_SPLIT = re.compile(r"[^0-9a-z\u4e00-\u9fff]+")
_CANONICAL = (
    (re.compile(r"\bhong\s*kong\b"), "hk"), (re.compile(r"\bh\.\s*k\.?"), "hk"), (re.compile(r"&"), " and "),
    (re.compile(r"\bintl\b"), "international"), (re.compile(r"\bco\.?,?\s*ltd\b"), "co ltd"),
)


def is_han(text: str) -> bool:
    """Whether a name is written in Chinese (any Han character)."""
    return bool(_HAN.search(text))


@dataclass(frozen=True)
class LatinName:
    """An alphabetic name as tokens: all, and the distinctive ones (neither legal form nor generic)."""

    text: str
    normal: str
    tokens: tuple[str, ...]
    distinctive: tuple[str, ...]


@dataclass
class HanName:
    """A Chinese name in pieces: glossed words (with their English) and proper runs (as pinyin)."""

    text: str
    normal: str                                              # folded, legal suffix dropped
    proper: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)   # (chars, syllables)
    glossed: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (word, English words)
    latin: tuple[str, ...] = ()                              # Latin tokens inside the name ("AOOK科技")

    @property
    def proper_chars(self) -> str:
        return "".join(chars for chars, _ in self.proper)

    @property
    def english(self) -> set[str]:
        return {word for _, words in self.glossed for word in words}


@lru_cache(maxsize=65536)
def latin_name(text: str) -> LatinName:
    normal = fold(text)
    for pattern, replacement in _CANONICAL:
        normal = pattern.sub(replacement, normal)
    tokens = tuple(t for t in _SPLIT.split(normal) if t and t not in LEGAL_FORMS)
    distinctive = tuple(t for t in tokens if t not in GENERIC and not t.isdigit())
    return LatinName(text, " ".join(tokens), tokens, distinctive)


def _strip_han_legal(text: str) -> str:
    for suffix in HAN_LEGAL_SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix) + 1:
            return text[:-len(suffix)]
    return text


def _glossed_pieces(word: str) -> list[tuple[str, bool]]:
    """(piece, is_glossed) of one segmented word: the longest glossary terms, the rest proper."""
    pieces: list[tuple[str, bool]] = []
    i = 0
    while i < len(word):
        term = next((word[i:j] for j in range(len(word), i, -1) if word[i:j] in GLOSSARY), None)
        if term is not None and (len(term) > 1 or len(word) == 1):
            pieces.append((term, True))
            i += len(term)
            continue
        if pieces and not pieces[-1][1]:
            pieces[-1] = (pieces[-1][0] + word[i], False)
        else:
            pieces.append((word[i], False))
        i += 1
    return pieces


@lru_cache(maxsize=65536)
def han_name(text: str) -> HanName:
    normal = _strip_han_legal(re.sub(r"[\s()（）\[\]【】·・,，.。]", "", fold(text)))
    name = HanName(text, normal)
    latin: list[str] = []
    runs = [""]   # proper characters, a run broken only by a glossed word (jieba splits 云泽 in two)
    for word in jieba.lcut(normal, HMM=False):
        if not _HAN.search(word):
            runs.append("")
            latin.extend(t for t in _SPLIT.split(word) if t and t not in LEGAL_FORMS)
            continue
        for piece, glossed in _glossed_pieces(word):
            if glossed:
                name.glossed.append((piece, GLOSSARY[piece]))
                runs.append("")
            else:
                runs[-1] += piece
    name.proper = [(run, tuple(lazy_pinyin(run))) for run in runs if run]
    name.latin = tuple(latin)
    return name


def syllable_spans(name: HanName, longest: int = 4) -> set[str]:
    """Every run of up to ``longest`` consecutive syllables within a proper piece, joined:
    云泽 gives yun, ze, yunze. A listed token matches only at syllable boundaries."""
    spans: set[str] = set(name.latin)
    for _, syllables in name.proper:
        for i in range(len(syllables)):
            for j in range(i + 1, min(len(syllables), i + longest) + 1):
                spans.add("".join(syllables[i:j]))
    return spans
