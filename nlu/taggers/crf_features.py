"""Features of each word for the CRF tagger; training and serving both call ``sentence_features``.

Two feature sets, chosen by language:

- ``char`` (Chinese, one word per character): the character and its neighbours within two
  positions, and the bigrams and trigram around it. Each of these five characters also gets
  its type (Han, Latin letter, digit, punctuation), and flags mark the first and last one.
- ``word`` (English and other space-separated languages): the lower-cased word, its shape
  (``Xxxx``, ``dd:dd``), prefixes and suffixes of 1 to 4 characters, its type flags, and the
  lower-cased words and shapes of its neighbours within two positions, plus bigrams.

A feature is a ``name: value`` pair, which python-crfsuite turns into the binary feature
``name:value``. The set's name and ``FEATURES_VERSION`` are stored in the manifest, so a
model is never served with features it was not trained on.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Sequence

import regex

from nlu.words import is_chinese

logger = logging.getLogger(__name__)

FEATURES_VERSION = 1
FEATURE_SETS = ("char", "word")
_WINDOW = 2
_PADDING = ("<s2>", "<s1>")
_END_PADDING = ("</s1>", "</s2>")
_HAN_PATTERN = regex.compile(r"\p{Han}")
_SHAPE_RUNS = regex.compile(r"(.)\1{2,}")

FeatureDict = dict[str, str | float]


def feature_set_for(language: str) -> str:
    """Return the feature set used for ``language``: ``char`` for Chinese, else ``word``."""
    return "char" if is_chinese(language) else "word"


def sentence_features(words: Sequence[str], feature_set: str) -> list[FeatureDict]:
    """Compute the features of every word of one sentence.

    Args:
        words: The words; for the ``char`` set, one character each.
        feature_set: ``char`` or ``word``.

    Returns:
        One feature dictionary per word.

    Raises:
        ValueError: If ``feature_set`` is unknown.
    """
    if feature_set == "char":
        return _char_features(words)
    if feature_set == "word":
        return _word_features(words)
    raise ValueError(f"unknown CRF feature set {feature_set!r}: use one of {FEATURE_SETS}")


def char_type(text: str) -> str:
    """Classify a character (or a word by its first character) for the features.

    Returns:
        ``han``, ``latin``, ``digit``, ``space``, ``punct`` or ``other``.
    """
    if not text:
        return "other"
    first = text[0]
    if _HAN_PATTERN.match(first):
        return "han"
    if first.isdigit():
        return "digit"
    if first.isalpha():
        return "latin"
    if first.isspace():
        return "space"
    if unicodedata.category(first).startswith(("P", "S")):
        return "punct"
    return "other"


def word_shape(word: str) -> str:
    """Summarise a word's letter case and digits: ``ORD-2024`` becomes ``XX-dd``.

    Upper-case letters map to ``X``, other letters to ``x``, digits to ``d``, and other
    characters stay. Runs of more than two equal shape characters are cut to two, so the
    shape generalises over lengths.
    """
    shape = "".join(_shape_char(char) for char in word)
    return _SHAPE_RUNS.sub(r"\1\1", shape)


def _shape_char(char: str) -> str:
    if char.isupper():
        return "X"
    if char.isalpha():
        return "x"
    if char.isdigit():
        return "d"
    return char


def _char_features(chars: Sequence[str]) -> list[FeatureDict]:
    padded = [*_PADDING, *(char.lower() for char in chars), *_END_PADDING]
    types = ["pad"] * _WINDOW + [char_type(char) for char in chars] + ["pad"] * _WINDOW

    features = []
    for index in range(len(chars)):
        center = index + _WINDOW
        window = padded[center - 2 : center + 3]
        type_window = types[center - 2 : center + 3]
        item: FeatureDict = {"bias": 1.0}
        for offset, char, kind in zip(range(-2, 3), window, type_window, strict=True):
            item[f"c[{offset}]"] = char
            item[f"t[{offset}]"] = kind
        for offset in range(-2, 2):
            item[f"c[{offset},{offset + 1}]"] = window[offset + 2] + window[offset + 3]
        item["c[-1,0,1]"] = window[1] + window[2] + window[3]
        item["c[-1]c[1]"] = window[1] + "_" + window[3]
        item["t[-1,0,1]"] = "_".join(type_window[1:4])
        if index == 0:
            item["first"] = 1.0
        if index == len(chars) - 1:
            item["last"] = 1.0
        features.append(item)
    return features


def _word_features(words: Sequence[str]) -> list[FeatureDict]:
    lowered = [*_PADDING, *(word.lower() for word in words), *_END_PADDING]
    shapes = [*_PADDING, *(word_shape(word) for word in words), *_END_PADDING]

    features = []
    for index, word in enumerate(words):
        center = index + _WINDOW
        item: FeatureDict = {
            "bias": 1.0,
            "w": lowered[center],
            "shape": shapes[center],
            "type": char_type(word),
            "length": str(min(len(word), 8)),
        }
        for size in range(1, 5):
            if len(word) > size:
                item[f"prefix{size}"] = lowered[center][:size]
                item[f"suffix{size}"] = lowered[center][-size:]
        if word.isdigit():
            item["digits"] = str(len(word))
        for offset in (-2, -1, 1, 2):
            item[f"w[{offset}]"] = lowered[center + offset]
            item[f"shape[{offset}]"] = shapes[center + offset]
        item["w[-1,0]"] = lowered[center - 1] + "_" + lowered[center]
        item["w[0,1]"] = lowered[center] + "_" + lowered[center + 1]
        item["w[-2,-1]"] = lowered[center - 2] + "_" + lowered[center - 1]
        item["w[1,2]"] = lowered[center + 1] + "_" + lowered[center + 2]
        if index == 0:
            item["first"] = 1.0
        if index == len(words) - 1:
            item["last"] = 1.0
        features.append(item)
    return features
