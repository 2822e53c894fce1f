from __future__ import annotations

from retrieval.titles import TitleMatcher


def test_match_finds_named_document():
    matcher = TitleMatcher([(1, "故宫"), (2, "天坛"), (3, "故宫"), (4, "Refund policy")])

    assert matcher.match("故宫的门票多少钱？") == [1, 3]


def test_match_prefers_longest_title():
    matcher = TitleMatcher([(1, "故宫"), (2, "故宫餐厅")])

    assert matcher.match("故宫餐厅的电话是多少") == [2]


def test_match_is_case_insensitive_for_latin_titles():
    matcher = TitleMatcher([(5, "Premium Plan")])

    assert matcher.match("how much is the premium plan per month?") == [5]


def test_match_ignores_short_generic_titles():
    matcher = TitleMatcher([(1, "FAQ"), (2, "Help"), (3, "宫")])

    assert matcher.match("faq help 宫") == []


def test_match_without_named_title():
    matcher = TitleMatcher([(1, "故宫")])

    assert matcher.match("明天上海会下雨吗？") == []
