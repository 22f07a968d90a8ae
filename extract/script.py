"""Chinese script conversion (zhconv) for every module that folds or expands Chinese text.

zhconv's default loader leaves its dictionary file open (a ResourceWarning, an error in the
tests); loading it by path here, once, before any conversion, closes it.
"""

from __future__ import annotations

from pathlib import Path

import zhconv

zhconv.loaddict(str(Path(zhconv.__file__).with_name("zhcdict.json")))


def convert(text: str, locale: str) -> str:
    """``text`` in the script of ``locale`` (``zh-hans`` Simplified; ``zh-hant``, ``zh-tw``, ``zh-hk``)."""
    return str(zhconv.convert(text, locale))
