"""Figures of a replay, checked against values worked out by hand."""

from __future__ import annotations

import pytest

from evaluation.metrics import Similarity, score_similarity, summarize_results
from evaluation.replay import TurnResult


def _turn(dialog: str, turn: int, path: str, **values) -> TurnResult:
    defaults = {
        "language": "en",
        "reason": "r",
        "reply": "" if path in ("forwarded", "skipped") else "a reply",
        "reference": "the agent reply",
        "gold_intent": None,
        "predicted_intent": None,
        "intent_version": None,
        "dialog_version": None if path in ("forwarded", "skipped") else "base",
        "latency_ms": 10.0,
    }
    defaults.update(values)
    return TurnResult(dialog=dialog, turn=turn, path=path, **defaults)


# Dialog a: answered, fallback, answered. Dialog b: answered, handoff, then forwarded twice.
# Dialog c: one guard-rejected turn and one answered turn, in Chinese.
RESULTS = [
    _turn("a", 0, "retrieved", latency_ms=100.0, gold_intent="x", predicted_intent="x",
          intent_version="i1"),
    _turn("a", 1, "fallback", latency_ms=200.0),
    _turn("a", 2, "generated", latency_ms=5000.0, gold_intent="y", predicted_intent="x",
          intent_version="i1"),
    _turn("b", 0, "template", latency_ms=50.0, gold_intent="z", predicted_intent="z",
          intent_version="i1"),
    _turn("b", 1, "handoff", latency_ms=60.0, reason="customer_request"),
    _turn("b", 2, "forwarded", latency_ms=5.0, reason="conversation_waiting",
          gold_intent="z"),
    _turn("b", 3, "forwarded", latency_ms=7.0, reason="conversation_waiting"),
    _turn("c", 0, "skipped", latency_ms=0.0, language="zh-CN", reason="invalid_message"),
    _turn("c", 1, "retrieved", latency_ms=300.0, language="zh-CN"),
]  # fmt: skip
SIMILARITIES = [
    Similarity(0.8, 0.5),
    Similarity(0.1, 0.0),
    Similarity(0.6, 0.3),
    Similarity(0.4, 0.1),
    Similarity(0.2, 0.0),
    None,
    None,
    None,
    Similarity(0.5, 0.2),
]


@pytest.fixture(scope="module")
def summary():
    return summarize_results(RESULTS, SIMILARITIES)


def test_dialog_handoff_counts_whole_dialog(summary):
    assert summary["dialogs"] == 3
    assert summary["dialogs_without_handoff"] == 2
    assert summary["dialog_no_handoff_rate"] == pytest.approx(2 / 3)


def test_turn_shares_leave_out_skipped_turns(summary):
    assert summary["turns"] == 8
    assert summary["skipped_turns"] == 1
    assert summary["turns_without_handoff"] == 5
    assert summary["turn_no_handoff_rate"] == pytest.approx(5 / 8)
    assert summary["answered_turns"] == 4
    assert summary["answer_rate"] == pytest.approx(4 / 8)
    assert summary["fallback_rate"] == pytest.approx(1 / 8)


def test_similarity_means_per_group(summary):
    similarity = summary["similarity"]

    assert similarity["answered"]["turns"] == 4
    assert similarity["answered"]["cosine"] == pytest.approx((0.8 + 0.6 + 0.4 + 0.5) / 4)
    assert similarity["answered"]["rouge_l"] == pytest.approx((0.5 + 0.3 + 0.1 + 0.2) / 4)
    assert similarity["all_replies"]["turns"] == 6
    assert similarity["all_replies"]["cosine"] == pytest.approx(2.6 / 6)
    assert similarity["by_path"]["fallback"] == {"turns": 1, "cosine": 0.1, "rouge_l": 0.0}


def test_intent_accuracy_counts_served_gold_turns(summary):
    intent = summary["intent"]

    assert intent["status"] == "ok"
    assert intent["gold_turns"] == 4
    assert intent["turns"] == 3
    assert intent["accuracy"] == pytest.approx(2 / 3)
    assert intent["versions"] == ["i1"]


def test_intent_without_model_or_labels():
    unserved = [_turn("a", 0, "retrieved", gold_intent="x")]
    unlabelled = [_turn("a", 0, "retrieved")]

    assert summarize_results(unserved, [None])["intent"]["status"] == "no intent model"
    assert summarize_results(unserved, [None])["intent"]["accuracy"] is None
    assert summarize_results(unlabelled, [None])["intent"]["status"] == "no gold labels"


def test_latency_percentiles_per_path(summary):
    latency = summary["latency_ms"]

    assert latency["all"]["turns"] == 8
    assert latency["all"]["p50"] == pytest.approx((60.0 + 100.0) / 2)
    assert latency["by_path"]["retrieved"] == {"turns": 2, "p50": 200.0, "p95": 290.0}
    assert latency["by_path"]["forwarded"]["p50"] == pytest.approx(6.0)
    assert "skipped" not in latency["by_path"]


def test_paths_and_reasons_counted(summary):
    assert summary["paths"] == {
        "fallback": 1,
        "forwarded": 2,
        "generated": 1,
        "handoff": 1,
        "retrieved": 2,
        "skipped": 1,
        "template": 1,
    }
    assert summary["reasons"]["forwarded: conversation_waiting"] == 2
    assert summary["reasons"]["handoff: customer_request"] == 1


def test_figures_per_language(summary):
    chinese = summary["by_language"]["zh-CN"]

    assert chinese["turns"] == 1
    assert chinese["skipped_turns"] == 1
    assert chinese["answer_rate"] == 1.0
    assert summary["by_language"]["en"]["turns"] == 7


def test_mismatched_lengths_rejected():
    with pytest.raises(ValueError, match="got 9 results but 1 similarities"):
        summarize_results(RESULTS, SIMILARITIES[:1])


@pytest.mark.slow
def test_similarity_scores_hand_checked(packaged_embedder):
    results = [
        _turn("a", 0, "generated", reply="Refunds take five days.",
              reference="The refund takes five days"),
        _turn("a", 1, "retrieved", reply="Same words here.", reference="Same words here."),
        _turn("a", 2, "retrieved", reply="No reference.", reference=None),
        _turn("b", 0, "forwarded", reference="An agent replied."),
    ]  # fmt: skip

    similarities = score_similarity(results, packaged_embedder)

    # Tokens [refunds take five days] vs [the refund takes five days]: the longest
    # common subsequence is "five days", so P = 2/4, R = 2/5 and F = 4/9.
    assert similarities[0].rouge_l == pytest.approx(4 / 9)
    assert 0.5 < similarities[0].cosine < 1.0
    assert similarities[1].rouge_l == 1.0
    assert similarities[1].cosine == pytest.approx(1.0, abs=1e-5)
    assert similarities[2] is None
    assert similarities[3] is None
