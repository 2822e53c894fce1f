from __future__ import annotations

import pytest

from retrieval.lexical import LexicalIndex, tokenize

DOCUMENTS = [
    (10, "故宫门票价格：旺季每人60元，淡季每人40元。门票需要提前实名预约。"),
    (11, "八达岭长城每天早上七点开放，下午五点停止入场。"),
    (12, "参观日前一天可以免费退票，参观当天不能退票。"),
    (13, "How do I reset my password? Open the sign-in page and choose Forgot password."),
    (14, "Refunds go back to the original payment method within five business days."),
]


@pytest.fixture(scope="module")
def index() -> LexicalIndex:
    return LexicalIndex(DOCUMENTS)


def test_tokenize_english_lowercases_and_drops_stop_words():
    assert tokenize("How do I Reset my PASSWORD?") == ["reset", "password"]


def test_tokenize_chinese_adds_words_characters_and_bigrams():
    terms = tokenize("故宫门票")

    assert "故宫" in terms
    assert "门票" in terms
    assert {"故", "宫", "门", "票"} <= set(terms)
    assert "宫门" in terms


def test_tokenize_chinese_drops_stop_characters():
    terms = tokenize("故宫的门票")

    assert "的" not in terms
    assert "宫的" not in terms


def test_chinese_query_finds_ticket_price(index):
    matches = index.search("故宫的门票多少钱", top_k=3)

    assert matches[0].chunk_id == 10
    assert 0.3 < matches[0].score <= 1.0


def test_chinese_query_about_opening_hours(index):
    matches = index.search("长城几点开放？", top_k=3)

    assert matches[0].chunk_id == 11


def test_english_query_ranks_by_bm25(index):
    matches = index.search("reset password", top_k=5)

    assert [match.chunk_id for match in matches] == [13]
    assert matches[0].score == pytest.approx(1.0)
    assert matches[0].bm25 > 0


def test_unknown_terms_lower_the_score(index):
    full = index.score("refunds payment", [14])[14]
    partial = index.score("refunds payment xylophone", [14])[14]

    assert full == pytest.approx(1.0)
    assert 0 < partial < full


def test_score_of_unmatched_and_unknown_ids(index):
    scores = index.score("reset password", [11, 13, 999])

    assert scores[11] == 0.0
    assert scores[999] == 0.0
    assert scores[13] == pytest.approx(1.0)


def test_search_respects_allowed_ids(index):
    matches = index.search("门票 退票", top_k=5, allowed_ids=[12])

    assert [match.chunk_id for match in matches] == [12]


def test_query_without_known_terms_finds_nothing(index):
    assert index.search("颐和园怎么走", top_k=5) == []
    assert index.search("", top_k=5) == []


def test_empty_index_finds_nothing():
    empty = LexicalIndex([])

    assert empty.search("anything") == []
    assert empty.score("anything", [1]) == {1: 0.0}


def test_duplicate_ids_rejected():
    with pytest.raises(ValueError, match="duplicates"):
        LexicalIndex([(1, "a"), (1, "b")])
