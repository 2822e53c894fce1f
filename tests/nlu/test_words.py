from __future__ import annotations

import pytest

from nlu.words import Word, is_chinese, split_words


def _texts(words: list[Word]) -> list[str]:
    return [word.text for word in words]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Where is ORD-2024-0001?", ["Where", "is", "ORD-2024-0001", "?"]),
        ("listen to r&b on google music", ["listen", "to", "r&b", "on", "google", "music"]),
        (
            "i'd fly to st. louis at 3:30pm",
            ["i'd", "fly", "to", "st", ".", "louis", "at", "3:30pm"],
        ),
        ("top-rated books, 5 stars!", ["top-rated", "books", ",", "5", "stars", "!"]),
        ("mail ann@example.com now", ["mail", "ann@example.com", "now"]),
        ("costs $4.99 (tax incl.)", ["costs", "$", "4.99", "(", "tax", "incl", ".", ")"]),
        ("trailing dash- and 'quotes'", ["trailing", "dash", "-", "and", "'", "quotes", "'"]),
    ],
)
def test_split_words_english(text, expected):
    words = split_words(text, "en")

    assert _texts(words) == expected


def test_split_words_offsets_slice_original():
    text = "  Order  ORD-77,\tplease\n ship   to Zoë  "

    words = split_words(text, "en")

    assert [text[word.start : word.end] for word in words] == _texts(words)
    assert _texts(words) == ["Order", "ORD-77", ",", "please", "ship", "to", "Zoë"]


def test_split_words_keeps_combining_mark_in_word():
    decomposed = "nai\u0308ve cafe\u0301"

    words = split_words(decomposed, "en")

    assert _texts(words) == ["nai\u0308ve", "cafe\u0301"]


def test_split_words_han_in_english():
    words = split_words("buy 故宫 tickets", "en")

    assert _texts(words) == ["buy", "故", "宫", "tickets"]


def test_split_words_chinese_one_word_per_character():
    text = "我要听tfboys的歌 2首"

    words = split_words(text, "zh")

    assert _texts(words) == list("我要听tfboys的歌") + ["2", "首"]
    assert [(word.start, word.end) for word in words][3:5] == [(3, 4), (4, 5)]
    assert words[-2].start == text.index("2")


def test_split_words_chinese_region_tag():
    assert _texts(split_words("播放 ab", "zh-CN")) == ["播", "放", "a", "b"]
    assert is_chinese("zh-TW")
    assert not is_chinese("en")


@pytest.mark.parametrize("language", ["en", "zh"])
def test_split_words_whitespace_only(language):
    assert split_words("", language) == []
    assert split_words(" \t\n\u3000 ", language) == []


def test_split_words_empty_language_rejected():
    with pytest.raises(ValueError, match="language is empty"):
        split_words("hello", " ")


def test_split_words_long_text():
    text = "order ORD-1 " * 10_000

    words = split_words(text, "en")

    assert len(words) == 20_000
    assert words[-1] == Word("ORD-1", len(text) - 6, len(text) - 1)
