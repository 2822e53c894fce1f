"""Tests for token F1 and ROUGE-L on English, Chinese and mixed text."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer

from finetune.metrics import rouge_l, token_f1, tokenize


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Where is my ORDER?", ["where", "is", "my", "order"]),
        ("退款需要五天。", ["退", "款", "需", "要", "五", "天"]),
        ("iPhone 15的电池, OK?", ["iphone", "15", "的", "电", "池", "ok"]),
        ("e-mail: a_b@shop.com", ["e", "mail", "a", "b", "shop", "com"]),
        ("Café naïve", ["café", "naïve"]),
        ("？！ ...", []),
        ("", []),
    ],
)
def test_tokenize_cases(text, tokens):
    assert tokenize(text) == tokens


class TestTokenF1:
    def test_token_f1_exact_match(self):
        assert token_f1("It ships today.", "it ships TODAY") == pytest.approx(1.0)

    def test_token_f1_partial_overlap(self):
        # The shared "five" and "days" give precision 2/4 and recall 2/5.
        assert token_f1("Refunds take five days.", "The refund takes five days") == (
            pytest.approx(2 * 0.5 * 0.4 / 0.9)
        )

    def test_token_f1_ignores_order(self):
        assert token_f1("today ships it", "it ships today") == pytest.approx(1.0)

    def test_token_f1_counts_repeats_once_each(self):
        # One shared "yes" gives precision 1/3 and recall 1/1.
        assert token_f1("yes yes yes", "yes") == pytest.approx(0.5)

    def test_token_f1_disjoint(self):
        assert token_f1("no idea", "it ships today") == 0.0

    @pytest.mark.parametrize("prediction", ["", "   ", "?!"])
    def test_token_f1_empty_prediction(self, prediction):
        assert token_f1(prediction, "it ships today") == 0.0

    def test_token_f1_empty_reference(self):
        assert token_f1("it ships today", "") == 0.0

    def test_token_f1_chinese_characters(self):
        # The shared 退 款 需 要 天 give precision 5/6 and recall 5/6.
        assert token_f1("退款需要三天", "退款需要五天。") == pytest.approx(5 / 6)

    def test_token_f1_chinese_disjoint(self):
        assert token_f1("你好", "退款需要五天") == 0.0

    def test_token_f1_mixed_languages(self):
        # Tokens: ["订", "单", "order", "ok"] against ["订", "单", "order", "shipped"].
        assert token_f1("订单 order OK", "订单order shipped") == pytest.approx(0.75)


class TestRougeL:
    def test_rouge_l_exact_match(self):
        assert rouge_l("It ships today.", "it ships today") == pytest.approx(1.0)

    def test_rouge_l_one_word_changed(self):
        # Longest common subsequence: 5 of 6 tokens on both sides.
        assert rouge_l("the cat lay on the mat", "the cat sat on the mat") == pytest.approx(5 / 6)

    def test_rouge_l_rewards_order(self):
        assert rouge_l("today ships it", "it ships today") == pytest.approx(1 / 3)

    def test_rouge_l_disjoint(self):
        assert rouge_l("no idea", "it ships today") == 0.0

    @pytest.mark.parametrize("prediction", ["", "   ", "。"])
    def test_rouge_l_empty_prediction(self, prediction):
        assert rouge_l(prediction, "it ships today") == 0.0

    def test_rouge_l_chinese_characters(self):
        assert rouge_l("退款需要三天", "退款需要五天") == pytest.approx(5 / 6)

    def test_rouge_l_chinese_where_default_tokenizer_scores_zero(self):
        default_scorer = rouge_scorer.RougeScorer(["rougeL"])
        assert default_scorer.score("退款需要五天", "退款需要五天")["rougeL"].fmeasure == 0.0

        assert rouge_l("退款需要五天", "退款需要五天") == pytest.approx(1.0)

    def test_rouge_l_mixed_languages(self):
        # Tokens: ["请", "用", "app", "退", "款"] against ["请", "在", "app", "里", "退", "款"].
        # The longest common subsequence 请 app 退 款 gives precision 4/5 and recall 4/6.
        expected = 2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6)
        assert rouge_l("请用App退款", "请在 app 里退款") == pytest.approx(expected)

    def test_rouge_l_returns_float(self):
        assert isinstance(rouge_l("", "it ships today"), float)
