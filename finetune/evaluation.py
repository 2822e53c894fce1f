"""Evaluate a dialog model on the test split and compare two models example by example.

``evaluate_model`` computes the perplexity of the reference answers, generates an
answer to each test question with greedy decoding, and scores each answer against
its reference with ROUGE-L, token F1 and the cosine similarity of sentence
embeddings. ``compare`` sets a fine-tuned model's scores against the base model's.

Example:
    >>> examples = read_test_examples(Path("data/sft/test.jsonl"), limit=200)
    >>> base = evaluate_model(base_path, examples, embedder=embedder, name="base")
    >>> tuned = evaluate_model(Path("runs/a/model"), examples, embedder=embedder,
    ...                        name="fine-tuned")
    >>> comparison = compare(tuned, base)
    >>> sorted(comparison.deltas)
    ['embedding_similarity', 'perplexity', 'rouge_l', 'token_f1']
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

import numpy as np

from finetune.inference import compute_perplexity, generate_answers, load_model
from finetune.metrics import rouge_l, token_f1
from finetune.pairs import TextEmbedder

logger = logging.getLogger(__name__)

# Keys of a dataset line that identify the example, tried in this order.
ID_KEYS = ("id", "conversation_id", "external_id")
# Whether a higher value of each model-level metric is better.
HIGHER_IS_BETTER = {
    "perplexity": False,
    "rouge_l": True,
    "token_f1": True,
    "embedding_similarity": True,
}


@dataclass
class EvalExample:
    """One test example read from a dataset JSONL file.

    Attributes:
        prompt_messages: The system prompt, context turns and question as chat
            messages, ending with the "user" question.
        reference: The reference answer, the content of the final "assistant" message.
        question: The content of the last "user" message.
        example_id: The value of the line's first key in ``ID_KEYS`` as a string, or None.
    """

    prompt_messages: list[dict[str, str]]
    reference: str
    question: str
    example_id: str | None = None

    @property
    def messages(self) -> list[dict[str, str]]:
        """The prompt messages followed by the reference answer."""
        return [*self.prompt_messages, {"role": "assistant", "content": self.reference}]


@dataclass
class ExampleScore:
    """Scores of one generated answer against its reference.

    ROUGE-L and token F1 are in [0, 1], and the embedding similarity is a cosine in [-1, 1].
    """

    question: str
    reference: str
    prediction: str
    rouge_l: float
    token_f1: float
    embedding_similarity: float


@dataclass
class ModelScores:
    """Scores of one model on a list of test examples.

    Attributes:
        name: Label of the model in logs and reports, such as "base" or "fine-tuned".
        model_path: Folder the model was loaded from.
        perplexity: exp of the mean negative log-likelihood per answer token, over all
            answer tokens of all examples.
        rouge_l: Mean ROUGE-L F-measure of the examples.
        token_f1: Mean token F1 of the examples.
        embedding_similarity: Mean cosine similarity of the examples.
        examples: Per-example scores, in the order of the examples evaluated.
        seconds: Wall-clock seconds of the evaluation, model loading included.
    """

    name: str
    model_path: Path
    perplexity: float
    rouge_l: float
    token_f1: float
    embedding_similarity: float
    examples: list[ExampleScore]
    seconds: float

    @classmethod
    def from_examples(
        cls,
        *,
        name: str,
        model_path: Path,
        perplexity: float,
        examples: Sequence[ExampleScore],
        seconds: float,
    ) -> ModelScores:
        """Build the scores with the per-example metrics averaged.

        Raises:
            ValueError: If ``examples`` is empty.
        """
        if not examples:
            raise ValueError(f"no example scores for model {name!r}: evaluate at least one")
        return cls(
            name=name,
            model_path=model_path,
            perplexity=perplexity,
            rouge_l=fmean(example.rouge_l for example in examples),
            token_f1=fmean(example.token_f1 for example in examples),
            embedding_similarity=fmean(example.embedding_similarity for example in examples),
            examples=list(examples),
            seconds=seconds,
        )


@dataclass
class ExampleDifference:
    """One test example as scored for the baseline and the candidate model.

    Attributes:
        index: Position of the example in the evaluated list.
        baseline: The baseline model's answer and scores.
        candidate: The candidate model's answer and scores.
    """

    index: int
    baseline: ExampleScore
    candidate: ExampleScore

    @property
    def rouge_l_difference(self) -> float:
        """Candidate minus baseline ROUGE-L."""
        return self.candidate.rouge_l - self.baseline.rouge_l

    @property
    def similarity_difference(self) -> float:
        """Candidate minus baseline embedding similarity."""
        return self.candidate.embedding_similarity - self.baseline.embedding_similarity


@dataclass
class Comparison:
    """A candidate model's scores against a baseline's on the same examples.

    Attributes:
        candidate: Scores of the model under test, usually the fine-tuned one.
        baseline: Scores of the reference model, usually the base model.
        deltas: Candidate minus baseline for each metric in ``HIGHER_IS_BETTER``.
            A negative perplexity delta and positive deltas of the others are gains.
        top_differences: The examples whose answers differ most, largest first.
    """

    candidate: ModelScores
    baseline: ModelScores
    deltas: dict[str, float]
    top_differences: list[ExampleDifference]


def read_test_examples(path: Path, limit: int | None = None) -> list[EvalExample]:
    """Read chat examples from a dataset JSONL file such as ``test.jsonl``.

    Each line is an object with a "messages" list, as ``finetune.dataset`` writes it.
    Blank lines are skipped. Keys other than "messages" and those in ``ID_KEYS`` are
    ignored.

    Args:
        path: The JSONL file.
        limit: Maximum examples to read, from the start of the file; None reads all.

    Returns:
        The examples in file order.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        ValueError: If ``limit`` is below 1, or a line is not valid JSON or not a chat
            example that ends with a user question and an assistant answer.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"invalid limit {limit}: use a positive number or None for all")
    if not path.is_file():
        raise FileNotFoundError(
            f"test file {path} not found: write the dataset with 'supportbot finetune "
            "dataset' and pass the test.jsonl it wrote"
        )

    examples: list[EvalExample] = []
    with path.open(encoding="utf-8") as file:
        for line_number, line in enumerate(file, start=1):
            if limit is not None and len(examples) >= limit:
                break
            if line.strip():
                examples.append(_parse_example(line, f"line {line_number} of {path}"))
    logger.info("Read %d test examples from %s", len(examples), path)
    return examples


def _parse_example(line: str, location: str) -> EvalExample:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"invalid JSON in {location}: {error}") from error
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or not all(_is_message(m) for m in messages):
        raise ValueError(
            f"invalid {location}: expected an object with a 'messages' list of "
            "{'role', 'content'} objects, as 'supportbot finetune dataset' writes"
        )
    roles = [message["role"] for message in messages]
    if len(roles) < 2 or roles[-1] != "assistant" or roles[-2] != "user":
        raise ValueError(
            f"invalid {location} with roles {roles}: the last message must be the "
            "assistant answer and the one before it the user question"
        )

    example_id = next((record[key] for key in ID_KEYS if record.get(key) is not None), None)
    return EvalExample(
        prompt_messages=[dict(message) for message in messages[:-1]],
        reference=messages[-1]["content"],
        question=messages[-2]["content"],
        example_id=str(example_id) if example_id is not None else None,
    )


def _is_message(message: Any) -> bool:
    return (
        isinstance(message, dict)
        and isinstance(message.get("role"), str)
        and isinstance(message.get("content"), str)
    )


def evaluate_model(
    model_path: Path,
    examples: Sequence[EvalExample],
    *,
    embedder: TextEmbedder,
    name: str,
    max_new_tokens: int = 96,
    batch_size: int = 8,
    max_seq_len: int = 1024,
    device: str | None = None,
) -> ModelScores:
    """Compute the perplexity, generate answers and score them for one local model.

    Loads ``AutoModelForCausalLM`` and ``AutoTokenizer`` from ``model_path`` without
    contacting a model hub. Perplexity covers the answer tokens only, labelled as in
    training by ``finetune.tokenization``. Answers are generated greedily from the
    prompt messages in batches, with left padding, and only the new tokens are decoded.
    Cost: one forward pass and one ``generate`` call per batch, so the time grows with
    the number of examples times ``max_new_tokens``.

    Args:
        model_path: Local folder written by ``save_pretrained``, such as a training
            run's ``model/`` folder or a converted packaged model.
        examples: Test examples, as ``read_test_examples`` returns them.
        embedder: Embeds answers and references into unit-norm vectors, such as
            ``retrieval.embedder.SentenceTransformerEmbedder``.
        name: Label of the model in logs, progress bars and reports.
        max_new_tokens: Maximum tokens generated per answer.
        batch_size: Examples per forward pass and per ``generate`` call.
        max_seq_len: Maximum tokens per example. A prompt longer than
            ``max_seq_len - max_new_tokens`` loses its oldest context turns, then its
            first tokens. An example whose answer alone exceeds ``max_seq_len`` is left
            out of the perplexity, with a warning.
        device: Torch device such as "cpu" or "cuda:0". None picks CUDA when available.

    Returns:
        The model's mean scores and the per-example scores in the order of ``examples``.

    Raises:
        ValueError: If ``examples`` is empty, a size argument is out of range, the
            tokenizer has no chat template, or no example fits in ``max_seq_len``.
        FileNotFoundError: If ``model_path`` has no config.json.
    """
    _validate_evaluation_args(examples, max_new_tokens, batch_size, max_seq_len)

    started = time.perf_counter()
    model, tokenizer = load_model(model_path, device=device)

    perplexity = compute_perplexity(
        model,
        tokenizer,
        [example.messages for example in examples],
        max_seq_len=max_seq_len,
        batch_size=batch_size,
        description=name,
    )
    predictions = generate_answers(
        model,
        tokenizer,
        [example.prompt_messages for example in examples],
        max_new_tokens=max_new_tokens,
        max_prompt_tokens=max_seq_len - max_new_tokens,
        batch_size=batch_size,
        description=name,
    )
    example_scores = score_predictions(examples, predictions, embedder)

    scores = ModelScores.from_examples(
        name=name,
        model_path=model_path,
        perplexity=perplexity,
        examples=example_scores,
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "Evaluated %s on %d examples in %.1f s: perplexity %.3f, ROUGE-L %.3f, token F1 "
        "%.3f, embedding similarity %.3f",
        name,
        len(examples),
        scores.seconds,
        scores.perplexity,
        scores.rouge_l,
        scores.token_f1,
        scores.embedding_similarity,
    )
    return scores


def _validate_evaluation_args(
    examples: Sequence[EvalExample], max_new_tokens: int, batch_size: int, max_seq_len: int
) -> None:
    if not examples:
        raise ValueError("no test examples to evaluate: pass at least one example")
    if max_new_tokens < 1:
        raise ValueError(f"invalid max_new_tokens {max_new_tokens}: use at least 1")
    if batch_size < 1:
        raise ValueError(f"invalid batch_size {batch_size}: use at least 1")
    if max_seq_len <= max_new_tokens:
        raise ValueError(
            f"max_seq_len {max_seq_len} leaves no room for a prompt with max_new_tokens "
            f"{max_new_tokens}: raise max_seq_len or lower max_new_tokens"
        )


def score_predictions(
    examples: Sequence[EvalExample], predictions: Sequence[str], embedder: TextEmbedder
) -> list[ExampleScore]:
    """Score each prediction against its example's reference answer.

    An empty or whitespace-only prediction scores 0.0 on every metric, including
    the embedding similarity, which would otherwise compare the embedding of an
    empty string.

    Args:
        examples: The examples, each with its reference answer.
        predictions: One generated answer per example, in the same order.
        embedder: Returns unit-norm rows, so that a dot product is the cosine.

    Returns:
        One score per example, in order.

    Raises:
        ValueError: If the two sequences differ in length.
    """
    if len(predictions) != len(examples):
        raise ValueError(
            f"got {len(predictions)} predictions for {len(examples)} examples: pass one "
            "prediction per example"
        )
    references = [example.reference for example in examples]
    similarities = _cosine_similarities(list(predictions), references, embedder)
    return [
        ExampleScore(
            question=example.question,
            reference=example.reference,
            prediction=prediction,
            rouge_l=rouge_l(prediction, example.reference),
            token_f1=token_f1(prediction, example.reference),
            embedding_similarity=similarity,
        )
        for example, prediction, similarity in zip(examples, predictions, similarities, strict=True)
    ]


def _cosine_similarities(
    predictions: list[str], references: list[str], embedder: TextEmbedder
) -> list[float]:
    vectors = np.asarray(embedder.embed(predictions + references), dtype=np.float64)
    prediction_vectors = vectors[: len(predictions)]  # (N, dimension)
    reference_vectors = vectors[len(predictions) :]  # (N, dimension)
    # Unit-norm rows give cosines up to rounding; the clip keeps them in [-1, 1].
    cosines = np.clip(np.sum(prediction_vectors * reference_vectors, axis=1), -1.0, 1.0)
    return [
        float(cosine) if prediction.strip() else 0.0
        for prediction, cosine in zip(predictions, cosines, strict=True)
    ]


def compare(candidate: ModelScores, baseline: ModelScores, top_n: int = 10) -> Comparison:
    """Compare two models' scores on the same examples.

    Examples are matched by position. The examples listed are those whose two
    answers differ, ordered by the absolute difference of their ROUGE-L, then of
    their embedding similarity, then by position.

    Args:
        candidate: Scores of the model under test.
        baseline: Scores of the model to compare against.
        top_n: Maximum examples in ``top_differences``; 0 lists none.

    Returns:
        The metric deltas (candidate minus baseline) and the most different examples.

    Raises:
        ValueError: If ``top_n`` is negative, or the two models were scored on
            different example lists.
    """
    if top_n < 0:
        raise ValueError(f"invalid top_n {top_n}: use 0 or more")
    _validate_same_examples(candidate, baseline)

    deltas = {
        metric: getattr(candidate, metric) - getattr(baseline, metric)
        for metric in HIGHER_IS_BETTER
    }
    differences = [
        ExampleDifference(index, baseline_score, candidate_score)
        for index, (baseline_score, candidate_score) in enumerate(
            zip(baseline.examples, candidate.examples, strict=True)
        )
        if baseline_score.prediction != candidate_score.prediction
    ]
    differences.sort(
        key=lambda difference: (
            -abs(difference.rouge_l_difference),
            -abs(difference.similarity_difference),
            difference.index,
        )
    )
    return Comparison(candidate, baseline, deltas, differences[:top_n])


def _validate_same_examples(candidate: ModelScores, baseline: ModelScores) -> None:
    if len(candidate.examples) != len(baseline.examples):
        raise ValueError(
            f"{candidate.name!r} has {len(candidate.examples)} example scores and "
            f"{baseline.name!r} has {len(baseline.examples)}: evaluate both models on the "
            "same example list"
        )
    for index, (ours, theirs) in enumerate(zip(candidate.examples, baseline.examples, strict=True)):
        if (ours.question, ours.reference) != (theirs.question, theirs.reference):
            raise ValueError(
                f"example {index} has a different question or reference in {candidate.name!r} "
                f"and {baseline.name!r}: evaluate both models on the same example list"
            )
