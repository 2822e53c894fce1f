"""Language detection for routing queries and labelling chunks.

Only the two languages that supportbot serves are distinguished: Simplified Chinese
and English. Any text without enough Chinese is labelled English.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence

logger = logging.getLogger(__name__)

# CJK Unified Ideographs with extension A, the compatibility block and extensions B-F.
CJK_PATTERN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")
_LATIN_WORD_PATTERN = re.compile(r"[^\W\d_]+", re.ASCII)

# A Han character carries about as much meaning as an English word, so the share compares
# characters with words. 0.2 labels "How much is a 故宫 ticket?" Chinese but leaves an
# English paragraph with one Chinese name English.
ZH_SHARE_THRESHOLD = 0.2


def has_cjk(text: str) -> bool:
    """Return whether ``text`` contains at least one CJK ideograph."""
    return CJK_PATTERN.search(text) is not None


def count_cjk(text: str) -> int:
    """Return the number of CJK ideographs in ``text``."""
    return len(CJK_PATTERN.findall(text))


def detect_language(text: str) -> str:
    """Label ``text`` as Simplified Chinese or English.

    The label is "zh-CN" when CJK ideographs make up at least ``ZH_SHARE_THRESHOLD`` of
    the ideographs plus ASCII words, so mixed text with a substantial Chinese part counts
    as Chinese. Traditional characters count as Chinese too.

    Args:
        text: Any text; an empty string is labelled English.

    Returns:
        "zh-CN" or "en".
    """
    cjk_chars = count_cjk(text)
    if cjk_chars == 0:
        return "en"

    latin_words = len(_LATIN_WORD_PATTERN.findall(text))
    share = cjk_chars / (cjk_chars + latin_words)
    return "zh-CN" if share >= ZH_SHARE_THRESHOLD else "en"


def detect_majority_language(texts: Sequence[str], sample_size: int = 500) -> str:
    """Return the language of most of an evenly spaced sample of ``texts`` ("en" when empty).

    Training data of one model is labelled this way, so a few English brand names in a
    Chinese data set do not change its language.
    """
    sample = texts[:: max(1, len(texts) // sample_size)]
    votes = Counter(detect_language(text) for text in sample)
    return votes.most_common(1)[0][0] if votes else "en"
