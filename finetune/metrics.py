"""Text-overlap metrics between a generated answer and its reference, for English and Chinese.

Both metrics share one tokenization: text is lowercased, punctuation is dropped,
Latin-script runs (letters and digits) become words and each CJK character becomes
its own token. Character tokens are the usual unit for scoring Chinese, which has no
spaces between words, and rouge_score's default tokenizer drops non-ASCII characters,
so Chinese answers would otherwise score 0.

Example:
    >>> token_f1("Refunds take five days.", "The refund takes five days")
    0.4444444444444445
    >>> rouge_l("退款需要三天", "退款需要五天")
    0.8333333333333334
"""

from __future__ import annotations

import logging
import re
from collections import Counter

from rouge_score import rouge_scorer
from rouge_score import tokenizers as rouge_tokenizers

logger = logging.getLogger(__name__)

# Japanese kana and CJK ideographs (unified, extension A, compatibility, extensions B-F).
# Hangul is left out because Korean separates words with spaces.
_CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
# One CJK character, or a run of letters and digits that contains no CJK character.
# [^\W_] matches a Unicode letter or digit, so punctuation and symbols match neither branch.
_TOKEN_RE = re.compile(rf"[{_CJK_CHARS}]|(?:(?![{_CJK_CHARS}])[^\W_])+")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into lowercase words and single CJK characters, without punctuation.

    Example:
        >>> tokenize("iPhone 15 的电池, OK?")
        ['iphone', '15', '的', '电', '池', 'ok']
    """
    return _TOKEN_RE.findall(text.lower())


class _MixedScriptTokenizer(rouge_tokenizers.Tokenizer):
    """Adapter that gives ``RougeScorer`` this module's ``tokenize``."""

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)


_ROUGE_SCORER = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_MixedScriptTokenizer())


def token_f1(prediction: str, reference: str) -> float:
    """Return the bag-of-tokens F1 between ``prediction`` and ``reference``, as in SQuAD.

    Precision and recall count the tokens the two texts share, each shared token at
    most as often as it occurs in both. Unlike the SQuAD script, English articles are
    kept, because the same code scores Chinese.

    Returns:
        F1 in [0, 1]; 0.0 when either text has no tokens, an empty prediction included.
    """
    prediction_tokens = tokenize(prediction)
    reference_tokens = tokenize(reference)
    if not prediction_tokens or not reference_tokens:
        return 0.0

    shared = sum((Counter(prediction_tokens) & Counter(reference_tokens)).values())
    if shared == 0:
        return 0.0

    precision = shared / len(prediction_tokens)
    recall = shared / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str) -> float:
    """Return the ROUGE-L F-measure of ``prediction`` against ``reference``.

    ROUGE-L scores the longest common subsequence of tokens, so unlike ``token_f1``
    it rewards tokens in the reference's order. Scoring uses rouge_score's
    ``RougeScorer`` with ``tokenize`` from this module and no stemming.

    Returns:
        F-measure in [0, 1]; 0.0 when either text has no tokens, an empty prediction
        included.
    """
    return float(_ROUGE_SCORER.score(reference, prediction)["rougeL"].fmeasure)
