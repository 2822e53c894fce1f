"""Tests for the evaluation report files: JSON, loss-curve PNG and Markdown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.eval_report import JSON_FILE, MARKDOWN_FILE, PLOT_FILE, write_report
from finetune.evaluation import Comparison, ExampleScore, ModelScores, compare

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TRAIN_REPORT = {
    "model_dir": "runs/a/model",
    "train_loss_history": [[1, 2.5], [2, 2.1], [3, 1.8], [4, 1.6]],
    "eval_loss_history": [[2, 2.2], [4, 1.9]],
    "steps": 4,
    "train_seconds": 12.5,
}
DATASET_STATS = {"pairs": {"train": 40, "validation": 5, "test": 3}, "duplicates_removed": 2}


def _score(question: str, reference: str, prediction: str, rouge: float) -> ExampleScore:
    return ExampleScore(
        question=question,
        reference=reference,
        prediction=prediction,
        rouge_l=rouge,
        token_f1=rouge / 2,
        embedding_similarity=0.5 + rouge / 4,
    )


def _comparison(baseline_perplexity: float = 21.5) -> Comparison:
    questions = [
        ("Where is my order?", "It ships today."),
        ("Pay by card | cash?", "Card only.\nNo cash."),
        ("退款需要多久？", "退款需要五天。"),
    ]
    baseline = ModelScores.from_examples(
        name="base",
        model_path=Path("models/base"),
        perplexity=baseline_perplexity,
        examples=[
            _score(*questions[0], "I do not know.", 0.0),
            _score(*questions[1], "We take cards | and cash.", 0.25),
            _score(*questions[2], "退款需要五天。", 1.0),
        ],
        seconds=3.0,
    )
    candidate = ModelScores.from_examples(
        name="fine-tuned",
        model_path=Path("runs/a/model"),
        perplexity=7.25,
        examples=[
            _score(*questions[0], "It ships today.", 1.0),
            _score(*questions[1], "Card only.\nSorry.", 0.5),
            _score(*questions[2], "退款需要五天。", 1.0),
        ],
        seconds=2.0,
    )
    return compare(candidate, baseline)


def test_write_report_files(tmp_path):
    files = write_report(
        tmp_path / "eval", _comparison(), train_report=TRAIN_REPORT, dataset_stats=DATASET_STATS
    )

    assert files.markdown == tmp_path / "eval" / MARKDOWN_FILE
    assert files.json == tmp_path / "eval" / JSON_FILE
    assert files.plot == tmp_path / "eval" / PLOT_FILE
    assert files.plot.read_bytes()[:8] == PNG_SIGNATURE
    assert files.plot.stat().st_size > 1000


def test_write_report_json_metrics(tmp_path):
    comparison = _comparison()

    files = write_report(
        tmp_path, comparison, train_report=TRAIN_REPORT, dataset_stats=DATASET_STATS
    )

    values = json.loads(files.json.read_text(encoding="utf-8"))
    assert values["test_pairs"] == 3
    assert values["metrics"]["perplexity"] == {
        "baseline": 21.5,
        "candidate": 7.25,
        "delta": pytest.approx(-14.25),
        "higher_is_better": False,
    }
    assert values["metrics"]["rouge_l"]["baseline"] == pytest.approx(1.25 / 3)
    assert values["metrics"]["rouge_l"]["candidate"] == pytest.approx(2.5 / 3)
    assert values["metrics"]["rouge_l"]["delta"] == pytest.approx(1.25 / 3)
    assert values["metrics"]["token_f1"]["higher_is_better"] is True
    assert values["baseline"]["name"] == "base"
    assert values["candidate"]["model_path"] == "runs/a/model"
    assert values["top_differences"] == [0, 1]
    assert values["dataset_stats"] == DATASET_STATS
    assert values["train_report"]["steps"] == 4


def test_write_report_json_example_rows(tmp_path):
    files = write_report(tmp_path, _comparison(), train_report=None, dataset_stats=None)

    rows = json.loads(files.json.read_text(encoding="utf-8"))["examples"]
    assert len(rows) == 3
    assert rows[2]["question"] == "退款需要多久？"
    assert rows[1]["baseline"]["prediction"] == "We take cards | and cash."
    assert rows[1]["candidate"] == {
        "prediction": "Card only.\nSorry.",
        "rouge_l": 0.5,
        "token_f1": 0.25,
        "embedding_similarity": 0.625,
    }


def test_write_report_json_infinite_perplexity(tmp_path):
    files = write_report(tmp_path, _comparison(float("inf")), train_report=None, dataset_stats=None)

    values = json.loads(files.json.read_text(encoding="utf-8"))
    assert values["metrics"]["perplexity"]["baseline"] is None
    assert values["metrics"]["perplexity"]["delta"] is None


def test_write_report_markdown_metrics_table(tmp_path):
    files = write_report(
        tmp_path, _comparison(), train_report=TRAIN_REPORT, dataset_stats=DATASET_STATS
    )

    markdown = files.markdown.read_text(encoding="utf-8")
    assert "| Perplexity (lower is better) | 21.500 | 7.250 | -14.250 | fine-tuned |" in markdown
    assert "| ROUGE-L (higher is better) | 0.417 | 0.833 | +0.417 | fine-tuned |" in markdown
    assert "| Token F1 (higher is better) | 0.208 | 0.417 | +0.208 | fine-tuned |" in markdown
    assert "| Embedding similarity (higher is better) | 0.604 | 0.708 | +0.104 |" in markdown
    assert "- Test pairs: 3" in markdown
    assert "- Dataset pairs per split: 40 train, 5 validation, 3 test" in markdown
    assert f"]({PLOT_FILE})" in markdown
    assert "4 optimizer steps in 12.5 s." in markdown


def test_write_report_markdown_differences_table(tmp_path):
    files = write_report(tmp_path, _comparison(), train_report=None, dataset_stats=None)

    markdown = files.markdown.read_text(encoding="utf-8")
    assert "## The 2 questions where the answers differ most" in markdown
    assert (
        "| 1 | Where is my order? | It ships today. | I do not know. | It ships today. "
        "| 0.000 | 1.000 |"
    ) in markdown
    assert (
        "| 2 | Pay by card \\| cash? | Card only.<br>No cash. | We take cards \\| and cash. "
        "| Card only.<br>Sorry. | 0.250 | 0.500 |"
    ) in markdown
    assert "退款需要多久" not in markdown  # both models gave the same answer


def test_write_report_without_loss_history(tmp_path):
    (tmp_path / PLOT_FILE).write_bytes(PNG_SIGNATURE)  # left by an earlier report
    train_report = {"train_loss_history": [], "eval_loss_history": [], "steps": 0}

    files = write_report(tmp_path, _comparison(), train_report=train_report, dataset_stats=None)

    assert files.plot is None
    assert not (tmp_path / PLOT_FILE).exists()
    markdown = files.markdown.read_text(encoding="utf-8")
    assert "no loss history, so there are no loss curves" in markdown
    assert PLOT_FILE not in markdown


def test_write_report_without_train_report(tmp_path):
    files = write_report(tmp_path, _comparison(), train_report=None, dataset_stats=None)

    assert files.plot is None
    markdown = files.markdown.read_text(encoding="utf-8")
    assert "No training report was given" in markdown
    assert "Dataset pairs" not in markdown


def test_write_report_only_validation_history(tmp_path):
    train_report = {"eval_loss_history": [[5, 1.5], [10, 1.2]]}

    files = write_report(tmp_path, _comparison(), train_report=train_report, dataset_stats=None)

    assert files.plot is not None
    assert files.plot.read_bytes()[:8] == PNG_SIGNATURE


def test_write_report_invalid_history(tmp_path):
    train_report = {"train_loss_history": [[1, 2.0, 3.0]]}

    with pytest.raises(ValueError, match="invalid train_loss_history"):
        write_report(tmp_path, _comparison(), train_report=train_report, dataset_stats=None)


def test_write_report_identical_answers(tmp_path):
    comparison = _comparison()
    same = compare(comparison.baseline, comparison.baseline)

    files = write_report(tmp_path, same, train_report=None, dataset_stats=None)

    markdown = files.markdown.read_text(encoding="utf-8")
    assert "The two models gave the same answer to every test question." in markdown
    assert "| Perplexity (lower is better) | 21.500 | 21.500 | +0.000 | tie |" in markdown
