"""Tests for evaluating dialog models: test examples, perplexity, generation and comparison."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.feature_extraction.text import HashingVectorizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from finetune.evaluation import (
    EvalExample,
    ExampleScore,
    ModelScores,
    compare,
    evaluate_model,
    read_test_examples,
    score_predictions,
)
from finetune.inference import _encode_prompt, compute_perplexity, generate_answers, load_model
from tests.utils.tiny_models import build_word_tokenizer, save_tiny_model_folder

WORDS = (
    "system user assistant you help shop customers where is my order it ships today "
    "thanks and the refund takes five days can i pay by card yes"
).split()
SYSTEM_PROMPT = "you help shop customers"
QUESTIONS_AND_ANSWERS = [
    ("where is my order", "it ships today"),
    ("can i pay by card", "yes you can pay by card"),
    ("where is the refund", "the refund takes five days and it ships today"),
    ("thanks", "yes"),
    ("is my order shipped today", "yes it ships today thanks"),
]


class HashingEmbedder:
    """Unit-norm bag-of-words vectors from scikit-learn's HashingVectorizer."""

    def __init__(self) -> None:
        self._vectorizer = HashingVectorizer(n_features=512, norm="l2", alternate_sign=False)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._vectorizer.transform(list(texts)).toarray().astype(np.float32)


def _example(question: str, answer: str, *context: str) -> EvalExample:
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    roles = ["user", "assistant"]
    messages += [{"role": roles[i % 2], "content": text} for i, text in enumerate(context)]
    messages.append({"role": "user", "content": question})
    return EvalExample(prompt_messages=messages, reference=answer, question=question)


def _examples() -> list[EvalExample]:
    examples = [_example(question, answer) for question, answer in QUESTIONS_AND_ANSWERS]
    examples.append(_example("thanks", "yes", "where is my order", "it ships today"))
    return examples


def _write_jsonl(path: Path, records: list[object]) -> Path:
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama (seed 0) and its word tokenizer saved as a local model folder."""
    return save_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model", WORDS)


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir: Path):
    """The tiny model and tokenizer as ``load_model`` loads them on the CPU."""
    return load_model(tiny_model_dir, device="cpu")


def _reference_perplexity(model_dir: Path, examples: Sequence[EvalExample]) -> float:
    """Compute the answer-token perplexity one example at a time with the model's own loss."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    total_nll = 0.0
    total_tokens = 0
    for example in examples:
        prompt = tokenizer.apply_chat_template(
            example.prompt_messages, tokenize=False, add_generation_prompt=True
        )
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(example.reference, add_special_tokens=False)["input_ids"]
        answer_ids.append(tokenizer.eos_token_id)  # the answer's closing <|im_end|>
        input_ids = torch.tensor([prompt_ids + answer_ids])
        labels = torch.tensor([[-100] * len(prompt_ids) + answer_ids])
        with torch.no_grad():
            loss = model(input_ids=input_ids, labels=labels).loss  # mean over answer tokens
        total_nll += float(loss) * len(answer_ids)
        total_tokens += len(answer_ids)
    return math.exp(total_nll / total_tokens)


def _score(question: str, prediction: str, rouge: float, similarity: float = 0.5) -> ExampleScore:
    return ExampleScore(
        question=question,
        reference=f"reference of {question}",
        prediction=prediction,
        rouge_l=rouge,
        token_f1=rouge / 2,
        embedding_similarity=similarity,
    )


def _model_scores(name: str, scores: list[ExampleScore], perplexity: float) -> ModelScores:
    return ModelScores.from_examples(
        name=name, model_path=Path(name), perplexity=perplexity, examples=scores, seconds=1.0
    )


class TestReadTestExamples:
    def test_read_test_examples_fields(self, tmp_path):
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "where is my order"},
            {"role": "assistant", "content": "it ships today"},
            {"role": "user", "content": "退款要多久"},
            {"role": "assistant", "content": "退款需要五天"},
        ]
        path = _write_jsonl(
            tmp_path / "test.jsonl", [{"messages": messages, "conversation_id": 42}]
        )

        [example] = read_test_examples(path)

        assert example.prompt_messages == messages[:-1]
        assert example.reference == "退款需要五天"
        assert example.question == "退款要多久"
        assert example.example_id == "42"
        assert example.messages == messages

    def test_read_test_examples_without_id(self, tmp_path):
        path = _write_jsonl(tmp_path / "test.jsonl", [{"messages": _examples()[0].messages}])

        [example] = read_test_examples(path)

        assert example.example_id is None

    def test_read_test_examples_limit_skips_blank_lines(self, tmp_path):
        path = tmp_path / "test.jsonl"
        lines = [json.dumps({"messages": example.messages}) for example in _examples()]
        path.write_text("\n\n".join(lines) + "\n", encoding="utf-8")

        examples = read_test_examples(path, limit=3)

        assert [example.question for example in examples] == [
            question for question, _ in QUESTIONS_AND_ANSWERS[:3]
        ]

    def test_read_test_examples_no_final_answer(self, tmp_path):
        messages = _examples()[0].prompt_messages
        path = _write_jsonl(
            tmp_path / "test.jsonl", [{"messages": _examples()[0].messages}, {"messages": messages}]
        )

        with pytest.raises(ValueError, match="line 2 of .*the last message must be the assistant"):
            read_test_examples(path)

    def test_read_test_examples_invalid_json(self, tmp_path):
        path = tmp_path / "test.jsonl"
        path.write_text('{"messages": [\n', encoding="utf-8")

        with pytest.raises(ValueError, match="invalid JSON in line 1"):
            read_test_examples(path)

    def test_read_test_examples_not_chat(self, tmp_path):
        path = _write_jsonl(tmp_path / "test.jsonl", [{"messages": [{"role": "user"}]}])

        with pytest.raises(ValueError, match="'messages' list"):
            read_test_examples(path)

    def test_read_test_examples_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="test.jsonl not found"):
            read_test_examples(tmp_path / "test.jsonl")

    def test_read_test_examples_invalid_limit(self, tmp_path):
        with pytest.raises(ValueError, match="invalid limit 0"):
            read_test_examples(tmp_path / "test.jsonl", limit=0)


class TestPerplexity:
    @pytest.mark.parametrize("batch_size", [1, 4])
    def test_compute_perplexity_matches_model_loss(self, tiny_model, tiny_model_dir, batch_size):
        model, tokenizer = tiny_model
        examples = _examples()

        perplexity = compute_perplexity(
            model,
            tokenizer,
            [example.messages for example in examples],
            max_seq_len=128,
            batch_size=batch_size,
        )

        assert math.isfinite(perplexity)
        assert perplexity == pytest.approx(
            _reference_perplexity(tiny_model_dir, examples), rel=1e-4
        )

    def test_compute_perplexity_skips_too_long_answer(self, tiny_model, tiny_model_dir):
        model, tokenizer = tiny_model
        short = _example("thanks", "yes")
        long = _example("where is my order", " ".join(["it ships today"] * 10))

        perplexity = compute_perplexity(
            model, tokenizer, [short.messages, long.messages], max_seq_len=24, batch_size=2
        )

        assert perplexity == pytest.approx(_reference_perplexity(tiny_model_dir, [short]), rel=1e-4)

    def test_compute_perplexity_nothing_fits(self, tiny_model):
        model, tokenizer = tiny_model
        long = _example("where is my order", " ".join(["it ships today"] * 10))

        with pytest.raises(ValueError, match="no example fits in max_seq_len 16"):
            compute_perplexity(model, tokenizer, [long.messages], max_seq_len=16, batch_size=1)


class TestGenerateAnswers:
    def test_generate_answers_matches_unbatched_generation(self, tiny_model):
        model, tokenizer = tiny_model
        prompts = [example.prompt_messages for example in _examples()]

        answers = generate_answers(
            model, tokenizer, prompts, max_new_tokens=6, max_prompt_tokens=120, batch_size=4
        )

        expected = []
        for messages in prompts:
            text = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            input_ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
            output = model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                do_sample=False,
                max_new_tokens=6,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
            new_ids = output[0, input_ids.shape[1] :]
            expected.append(tokenizer.decode(new_ids, skip_special_tokens=True).strip())
        assert answers == expected
        assert any(answers), "the tiny model generated only empty answers, so nothing is compared"

    def test_generate_answers_decodes_only_new_tokens(self, tiny_model):
        model, tokenizer = tiny_model
        prompt = _example("where is the refund", "", "where is my order", "it ships today")

        [answer] = generate_answers(
            model,
            tokenizer,
            [prompt.prompt_messages],
            max_new_tokens=3,
            max_prompt_tokens=120,
            batch_size=1,
        )

        # The word tokenizer decodes one word per token, so three new tokens give at most
        # three words, while the prompt alone has more than twenty.
        assert len(answer.split()) <= 3

    def test_encode_prompt_drops_oldest_turns(self, tiny_model):
        _, tokenizer = tiny_model
        example = _example("thanks", "yes", "where is my order", "it ships today")
        without_context = _example("thanks", "yes")
        full_ids = _encode_prompt(example.prompt_messages, tokenizer, 1000)
        short_ids = _encode_prompt(without_context.prompt_messages, tokenizer, 1000)

        ids = _encode_prompt(example.prompt_messages, tokenizer, len(full_ids) - 1)

        assert ids == short_ids

    def test_encode_prompt_cuts_first_tokens(self, tiny_model):
        _, tokenizer = tiny_model
        example = _example("where is my order", "yes")
        full_ids = _encode_prompt(example.prompt_messages, tokenizer, 1000)

        ids = _encode_prompt(example.prompt_messages, tokenizer, 5)

        assert ids == full_ids[-5:]


class TestEvaluateModel:
    def test_evaluate_model_scores(self, tiny_model_dir):
        examples = _examples()

        scores = evaluate_model(
            tiny_model_dir,
            examples,
            embedder=HashingEmbedder(),
            name="tiny",
            max_new_tokens=5,
            batch_size=4,
            max_seq_len=128,
            device="cpu",
        )

        assert scores.name == "tiny"
        assert scores.model_path == tiny_model_dir
        assert math.isfinite(scores.perplexity)
        assert scores.perplexity == pytest.approx(
            _reference_perplexity(tiny_model_dir, examples), rel=1e-4
        )
        assert [score.question for score in scores.examples] == [e.question for e in examples]
        assert [score.reference for score in scores.examples] == [e.reference for e in examples]
        for score in scores.examples:
            assert 0.0 <= score.rouge_l <= 1.0
            assert 0.0 <= score.token_f1 <= 1.0
            assert -1.0 <= score.embedding_similarity <= 1.0
        assert scores.rouge_l == pytest.approx(np.mean([s.rouge_l for s in scores.examples]))
        assert scores.seconds > 0

    def test_evaluate_model_missing_config(self, tmp_path):
        with pytest.raises(FileNotFoundError, match=f"{tmp_path}.*no config.json"):
            evaluate_model(tmp_path, _examples(), embedder=HashingEmbedder(), name="x")

    def test_evaluate_model_no_chat_template(self, tmp_path, tiny_model_dir):
        folder = tmp_path / "model"
        AutoModelForCausalLM.from_pretrained(tiny_model_dir).save_pretrained(folder)
        tokenizer = build_word_tokenizer(WORDS)
        tokenizer.chat_template = None
        tokenizer.save_pretrained(folder)

        with pytest.raises(ValueError, match=f"tokenizer in {folder} has no chat template"):
            evaluate_model(folder, _examples(), embedder=HashingEmbedder(), name="x")

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            ({"max_new_tokens": 0}, "invalid max_new_tokens 0"),
            ({"batch_size": 0}, "invalid batch_size 0"),
            ({"max_seq_len": 96}, "max_seq_len 96 leaves no room"),
        ],
    )
    def test_evaluate_model_invalid_arguments(self, tiny_model_dir, arguments, message):
        with pytest.raises(ValueError, match=message):
            evaluate_model(
                tiny_model_dir, _examples(), embedder=HashingEmbedder(), name="x", **arguments
            )

    def test_evaluate_model_no_examples(self, tiny_model_dir):
        with pytest.raises(ValueError, match="no test examples"):
            evaluate_model(tiny_model_dir, [], embedder=HashingEmbedder(), name="x")


class TestScorePredictions:
    def test_score_predictions_exact_answer(self):
        examples = [_example("where is my order", "It ships today.")]

        [score] = score_predictions(examples, ["it ships today"], HashingEmbedder())

        assert score.rouge_l == pytest.approx(1.0)
        assert score.token_f1 == pytest.approx(1.0)
        assert score.embedding_similarity == pytest.approx(1.0, abs=1e-6)
        assert score.prediction == "it ships today"
        assert score.question == "where is my order"

    def test_score_predictions_empty_prediction(self):
        examples = [_example("where is my order", "it ships today")]

        [score] = score_predictions(examples, ["  "], HashingEmbedder())

        assert score.rouge_l == 0.0
        assert score.token_f1 == 0.0
        assert score.embedding_similarity == 0.0

    def test_score_predictions_unrelated_answer(self):
        examples = [_example("where is my order", "it ships today")]

        [score] = score_predictions(examples, ["refunds take five days"], HashingEmbedder())

        assert score.rouge_l == 0.0
        assert score.embedding_similarity == pytest.approx(0.0, abs=1e-6)

    def test_score_predictions_length_mismatch(self):
        with pytest.raises(ValueError, match="got 2 predictions for 1 examples"):
            score_predictions([_example("a", "b")], ["b", "c"], HashingEmbedder())


class TestCompare:
    def test_compare_deltas(self):
        baseline = _model_scores("base", [_score("q1", "a", 0.2), _score("q2", "b", 0.4)], 20.0)
        candidate = _model_scores("tuned", [_score("q1", "x", 0.6), _score("q2", "y", 0.8)], 8.0)

        comparison = compare(candidate, baseline)

        assert comparison.deltas["perplexity"] == pytest.approx(-12.0)
        assert comparison.deltas["rouge_l"] == pytest.approx(0.4)
        assert comparison.deltas["token_f1"] == pytest.approx(0.2)
        assert comparison.deltas["embedding_similarity"] == pytest.approx(0.0)
        assert comparison.candidate is candidate
        assert comparison.baseline is baseline

    def test_compare_orders_by_rouge_l_difference(self):
        baseline = _model_scores(
            "base",
            [
                _score("small", "a", 0.5),
                _score("large drop", "b", 0.9),
                _score("tie, close embeddings", "c", 0.1, similarity=0.5),
                _score("tie, far embeddings", "d", 0.1, similarity=0.1),
                _score("same answer", "e", 0.0),
            ],
            10.0,
        )
        candidate = _model_scores(
            "tuned",
            [
                _score("small", "a2", 0.6),
                _score("large drop", "b2", 0.1),
                _score("tie, close embeddings", "c2", 0.4, similarity=0.6),
                _score("tie, far embeddings", "d2", 0.4, similarity=0.9),
                _score("same answer", "e", 0.0),
            ],
            9.0,
        )

        comparison = compare(candidate, baseline, top_n=10)

        assert [d.candidate.question for d in comparison.top_differences] == [
            "large drop",
            "tie, far embeddings",
            "tie, close embeddings",
            "small",
        ]
        assert [d.index for d in comparison.top_differences] == [1, 3, 2, 0]
        assert comparison.top_differences[0].rouge_l_difference == pytest.approx(-0.8)

    def test_compare_top_n(self):
        baseline = _model_scores("base", [_score(f"q{i}", "a", 0.0) for i in range(5)], 10.0)
        candidate = _model_scores("tuned", [_score(f"q{i}", "b", i / 10) for i in range(5)], 9.0)

        comparison = compare(candidate, baseline, top_n=2)

        assert [d.index for d in comparison.top_differences] == [4, 3]

    def test_compare_different_lengths(self):
        baseline = _model_scores("base", [_score("q1", "a", 0.1)], 10.0)
        candidate = _model_scores("tuned", [_score("q1", "a", 0.1), _score("q2", "a", 0.1)], 9.0)

        with pytest.raises(ValueError, match="'tuned' has 2 example scores and 'base' has 1"):
            compare(candidate, baseline)

    def test_compare_different_questions(self):
        baseline = _model_scores("base", [_score("q1", "a", 0.1)], 10.0)
        candidate = _model_scores("tuned", [_score("q2", "a", 0.1)], 9.0)

        with pytest.raises(ValueError, match="example 0 has a different question"):
            compare(candidate, baseline)

    def test_compare_negative_top_n(self):
        scores = _model_scores("base", [_score("q1", "a", 0.1)], 10.0)

        with pytest.raises(ValueError, match="invalid top_n -1"):
            compare(scores, scores, top_n=-1)


@pytest.mark.slow
def test_evaluate_model_packaged_smollm2(packaged_generator_path, packaged_embedder):
    examples = [
        _example("Where is my order?", "Your order ships today and arrives in two days."),
        _example("Can I pay by card?", "Yes, we accept all major credit cards."),
        _example("退款需要多久？", "退款会在五个工作日内退回到您的原支付账户。"),
        _example("可以修改收货地址吗？", "可以，在订单发货前您可以在账户设置中修改地址。"),
    ]

    scores = evaluate_model(
        packaged_generator_path,
        examples,
        embedder=packaged_embedder,
        name="SmolLM2",
        max_new_tokens=32,
        batch_size=4,
        device="cpu",
    )

    assert math.isfinite(scores.perplexity)
    assert scores.perplexity > 1.0
    assert len(scores.examples) == 4
    for score in scores.examples:
        assert score.prediction, f"empty answer to {score.question!r}"
        assert 0.0 <= score.rouge_l <= 1.0
        assert 0.0 <= score.token_f1 <= 1.0
        assert -1.0 <= score.embedding_similarity <= 1.0
    for metric in (scores.rouge_l, scores.token_f1, scores.embedding_similarity):
        assert 0.0 <= metric <= 1.0
