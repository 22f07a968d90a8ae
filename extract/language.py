"""Language of a text: Chinese by script share (reliable on mixed pages), else py3langid."""

from __future__ import annotations

import re

import py3langid

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LETTER = re.compile(r"[A-Za-z\u00c0-\u024f\u3400-\u9fff]")


def cjk_share(text: str) -> float:
    letters = len(_LETTER.findall(text))
    return len(_CJK.findall(text)) / letters if letters else 0.0


def detect_language(text: str) -> str:
    """ISO 639-1 code; a page whose letters are a fifth or more Han characters is 'zh'."""
    sample = text[:5000]
    if not sample.strip():
        return "und"
    if cjk_share(sample) >= 0.2:
        return "zh"
    lang, _ = py3langid.classify(sample)
    return str(lang)
