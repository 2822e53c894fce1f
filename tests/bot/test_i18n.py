from __future__ import annotations

import pytest

from bot.i18n import LANGUAGES, load_catalogue, normalize_language, translate


def test_catalogues_have_same_keys():
    catalogues = load_catalogue()

    assert set(catalogues) == set(LANGUAGES)
    assert set(catalogues["en"]) == set(catalogues["zh-CN"])


def test_chinese_catalogue_is_translated():
    catalogues = load_catalogue()

    untranslated = [
        key for key, value in catalogues["zh-CN"].items() if value == catalogues["en"][key]
    ]

    assert untranslated == []


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("zh", "zh-CN"),
        ("zh_CN", "zh-CN"),
        ("ZH-cn", "zh-CN"),
        ("en-US", "en"),
        (None, "en"),
        ("fr", "en"),
    ],
)
def test_normalize_language(tag, expected):
    assert normalize_language(tag) == expected


def test_translate_fills_placeholders():
    assert (
        translate("chat.source_item", "zh-CN", title="退款", score="0.91") == "退款（匹配度 0.91）"
    )


def test_translate_unknown_key():
    with pytest.raises(KeyError, match="no.such.key"):
        translate("no.such.key", "en")
