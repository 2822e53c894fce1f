from __future__ import annotations

import pytest

from retrieval.language import detect_language, detect_majority_language, has_cjk


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("How do I reset my password?", "en"),
        ("故宫的门票多少钱", "zh-CN"),
        ("我的 iPhone 订单什么时候发货？", "zh-CN"),
        ("How much is a 故宫 ticket?", "zh-CN"),
        ("Please send the parcel to Mr 王 at the front desk of the hotel, thanks a lot", "en"),
        ("", "en"),
        ("12345 !!!", "en"),
    ],
)
def test_detect_language_cases(text, expected):
    assert detect_language(text) == expected


def test_has_cjk_finds_ideographs():
    assert has_cjk("order 订单")
    assert not has_cjk("order number 12345")
    assert not has_cjk("")


def test_majority_language_of_training_texts():
    chinese = ["我要听周杰伦的歌", "明天北京天气怎么样", "播放 tfboys 的歌"] * 10

    assert detect_majority_language(chinese + ["play some music"]) == "zh-CN"
    assert detect_majority_language(["where is my order"] * 5) == "en"
    assert detect_majority_language([]) == "en"
