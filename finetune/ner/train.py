"""Train an entity tagger from tagged sentences, evaluate it and save a loadable folder.

``train_tagger`` reads top to bottom: check data → labels → train the backend → write the
manifest → load the saved folder with ``nlu.taggers.load_tagger`` → evaluate → write the
report. Evaluating the reloaded folder tests exactly what serving will load.

Example:
    >>> splits = read_public_tagging_dataset("snips", data_dir)
    >>> report = train_tagger(splits.train, splits.validation, Path("models/ner-en"),
    ...                       "transformer", language="en", test=splits.test)
    >>> report["evaluation"]["entity"]["micro"]["f1"]
    0.95...
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finetune.ner.config import BACKENDS, NerTrainingConfig
from finetune.ner.crf import train_crf
from finetune.ner.evaluation import evaluate_tags, write_eval_report
from finetune.ner.transformer import train_transformer
from nlu.decoding import tag_spans
from nlu.taggers import TaggerManifest, load_tagger
from nlu.taggers.crf_features import FEATURES_VERSION
from nlu.types import TaggedSentence

logger = logging.getLogger(__name__)


def train_tagger(
    train: Sequence[TaggedSentence],
    validation: Sequence[TaggedSentence] | None,
    out_dir: Path,
    backend: str,
    *,
    language: str,
    config: NerTrainingConfig | None = None,
    test: Sequence[TaggedSentence] | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    """Train, save and evaluate an entity tagger.

    Args:
        train: Training sentences with BIO tags.
        validation: Sentences for choosing the epoch (transformer) or the regularisation
            (CRF); None or empty trains without a choice.
        out_dir: Folder for the model files, ``nlu_model.json`` and the ``eval_report``
            files; created if missing. Existing model files in it are overwritten.
        backend: ``transformer`` or ``crf``.
        language: Language tag of the data, such as ``en`` or ``zh``; it selects how
            serving splits text into words (see ``nlu.words.split_words``).
        config: Training settings; None uses the defaults of ``NerTrainingConfig``.
        test: Sentences for the final evaluation. Without them the validation sentences
            are scored, and without those no scores are computed.
        version: Stored in the manifest; loaders use it as the default model version.

    Returns:
        The report also written to ``eval_report.json``: ``backend``, ``language``,
        ``evaluated_on`` (``test``, ``validation`` or None), ``evaluation`` (see
        ``finetune.ner.evaluation.evaluate_tags``; None without evaluation data) and
        ``training`` (times in seconds, chosen settings, validation history).

    Raises:
        ValueError: If the backend is unknown, ``train`` is empty, or a sentence's tags
            are not BIO.
        TaggerLoadError: If the transformer's base model cannot be found or loaded.
    """
    config = config or NerTrainingConfig()
    validation = list(validation or [])
    _validate_request(train, validation, backend, language)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = collect_labels([*train, *validation])
    logger.info(
        "Training %s entity tagger language=%s train=%d validation=%d labels=%d out=%s",
        backend,
        language,
        len(train),
        len(validation),
        len(labels),
        out_dir,
    )

    started = time.perf_counter()
    manifest, training = _train_backend(
        list(train), validation, out_dir, backend, language, labels, config
    )
    training["train_s"] = round(time.perf_counter() - started, 1)
    manifest.extra.update(
        version=version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        training=training,
    )
    manifest.write(out_dir)

    report = _evaluate_folder(out_dir, validation, test, version)
    report.update(backend=backend, language=language, training=training)
    write_eval_report(report, out_dir)
    return report


def collect_labels(sentences: Sequence[TaggedSentence]) -> list[str]:
    """Return ``O`` followed by ``B-``/``I-`` of every entity type in ``sentences``, sorted.

    Both prefixes are listed for each type even where the data has only one of them, so
    the model can predict any well-formed sequence.
    """
    types = sorted({span.type for sentence in sentences for span in tag_spans(sentence.tags)})
    return ["O", *(f"{prefix}-{name}" for name in types for prefix in ("B", "I"))]


def _validate_request(
    train: Sequence[TaggedSentence],
    validation: Sequence[TaggedSentence],
    backend: str,
    language: str,
) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: use one of {BACKENDS}")
    if not language or not language.strip():
        raise ValueError("language is empty: give a tag such as 'en' or 'zh'")
    if not train:
        raise ValueError("no training sentences: give at least one tagged sentence")
    for sentence in [*train, *validation]:
        try:
            tag_spans(sentence.tags)
        except ValueError as error:
            raise ValueError(f"{sentence.source or 'sentence'}: {error}") from error


def _train_backend(
    train: list[TaggedSentence],
    validation: list[TaggedSentence],
    out_dir: Path,
    backend: str,
    language: str,
    labels: list[str],
    config: NerTrainingConfig,
) -> tuple[TaggerManifest, dict[str, Any]]:
    settings = {"train_sentences": len(train), "validation_sentences": len(validation)}
    if backend == "crf":
        result = train_crf(train, validation, out_dir, language=language, config=config)
        manifest = TaggerManifest(
            backend="crf",
            language=language,
            labels=labels,
            max_length=config.crf_max_words,
            extra={"features": {"set": result.feature_set, "version": FEATURES_VERSION}},
        )
        settings.update(asdict(result))
        settings.update(max_iterations=config.crf_max_iterations)
        return manifest, settings

    result = train_transformer(train, validation, out_dir, labels=labels, config=config)
    manifest = TaggerManifest(
        backend="transformer",
        language=language,
        labels=labels,
        max_length=config.max_length,
        base_model=config.base_model,
        extra={"decoding": config.decoding},
    )
    settings.update(asdict(result))
    settings.update(config=config.to_dict())
    return manifest, settings


def _evaluate_folder(
    out_dir: Path,
    validation: list[TaggedSentence],
    test: Sequence[TaggedSentence] | None,
    version: str | None,
) -> dict[str, Any]:
    sentences, split = (list(test), "test") if test else (validation, "validation")
    if not sentences:
        logger.warning("No test or validation sentences: the report has no scores")
        return {"evaluated_on": None, "evaluation": None}

    tagger = load_tagger(out_dir, version=version)
    started = time.perf_counter()
    predictions = tagger.tag_words([sentence.words for sentence in sentences])
    predict_s = time.perf_counter() - started
    evaluation = evaluate_tags(
        [sentence.tags for sentence in sentences],
        [prediction.tags for prediction in predictions],
    )
    evaluation["predict_s"] = round(predict_s, 2)
    micro = evaluation["entity"]["micro"]
    logger.info(
        "Evaluated on %s sentences=%d entity_precision=%.4f entity_recall=%.4f entity_f1=%.4f",
        split,
        len(sentences),
        micro["precision"],
        micro["recall"],
        micro["f1"],
    )
    return {"evaluated_on": split, "evaluation": evaluation}
