"""Train a CRF entity tagger with sklearn-crfsuite.

The regularisation (c1 for L1, c2 for L2) is either fixed by the config or chosen from
``config.crf_grid`` by entity F1 on the validation data. Each grid point trains a model on
the training data alone; the best one is kept and none is retrained on the validation data.
Training a grid point on SNIPS's 13,084 sentences takes minutes on one CPU core.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import sklearn_crfsuite

from finetune.ner.config import NerTrainingConfig
from finetune.ner.evaluation import entity_f1
from nlu.taggers.crf import CRF_MODEL_FILE
from nlu.taggers.crf_features import feature_set_for, sentence_features
from nlu.types import TaggedSentence

logger = logging.getLogger(__name__)

# Used without validation data and unset crf_c1/crf_c2; a common sklearn-crfsuite choice.
_FALLBACK_C1_C2 = (0.05, 0.01)


@dataclass
class CrfTrainingResult:
    """Outcome of CRF training: the chosen regularisation and the grid results.

    Attributes:
        c1: The chosen L1 regularisation.
        c2: The chosen L2 regularisation.
        chosen_by: ``config`` (fixed), ``validation`` (grid search) or ``default``.
        feature_set: ``char`` or ``word``.
        grid: ``c1``, ``c2``, ``validation_f1`` and ``train_s`` of every grid point tried.
    """

    c1: float
    c2: float
    chosen_by: str
    feature_set: str
    grid: list[dict[str, float]] = field(default_factory=list)


def train_crf(
    train: list[TaggedSentence],
    validation: list[TaggedSentence],
    out_dir: Path,
    *,
    language: str,
    config: NerTrainingConfig,
) -> CrfTrainingResult:
    """Train a CRF and save it as ``out_dir / model.crfsuite``.

    Args:
        train: Training sentences.
        validation: Validation sentences for choosing c1 and c2; may be empty.
        out_dir: The tagger folder; it must exist.
        language: Language tag of the data; it selects the feature set.
        config: Training settings (``crf_*`` fields).

    Returns:
        The chosen regularisation and the grid results.
    """
    feature_set = feature_set_for(language)
    features = [sentence_features(sentence.words, feature_set) for sentence in train]
    tags = [sentence.tags for sentence in train]

    if config.crf_c1 is not None and config.crf_c2 is not None:
        pairs, chosen_by = [(config.crf_c1, config.crf_c2)], "config"
    elif validation:
        pairs, chosen_by = list(config.crf_grid), "validation"
    else:
        pairs, chosen_by = [_FALLBACK_C1_C2], "default"
        logger.warning(
            "No validation data: training the CRF with c1=%.3f c2=%.3f; pass validation "
            "sentences to choose them from crf_grid",
            *_FALLBACK_C1_C2,
        )

    with tempfile.TemporaryDirectory(prefix="crf-grid-", dir=out_dir) as scratch:
        best_path, result = _train_grid(
            features, tags, validation, pairs, Path(scratch), feature_set, config
        )
        shutil.move(best_path, out_dir / CRF_MODEL_FILE)
    result.chosen_by = chosen_by
    logger.info("Chose CRF regularisation c1=%.3f c2=%.3f by %s", result.c1, result.c2, chosen_by)
    return result


def _train_grid(
    features: list,
    tags: list[list[str]],
    validation: list[TaggedSentence],
    pairs: list[tuple[float, float]],
    scratch: Path,
    feature_set: str,
    config: NerTrainingConfig,
) -> tuple[Path, CrfTrainingResult]:
    validation_features = [sentence_features(s.words, feature_set) for s in validation]
    validation_tags = [sentence.tags for sentence in validation]

    best: tuple[float, Path] | None = None
    result = CrfTrainingResult(
        c1=pairs[0][0], c2=pairs[0][1], chosen_by="", feature_set=feature_set
    )
    for number, (c1, c2) in enumerate(pairs, start=1):
        path = scratch / f"c1_{c1}_c2_{c2}.crfsuite"
        started = time.perf_counter()
        crf = sklearn_crfsuite.CRF(
            algorithm="lbfgs",
            c1=c1,
            c2=c2,
            max_iterations=config.crf_max_iterations,
            all_possible_transitions=True,
            model_filename=str(path),
        )
        crf.fit(features, tags)
        score = entity_f1(validation_tags, crf.predict(validation_features)) if validation else 0.0
        seconds = time.perf_counter() - started
        result.grid.append(
            {"c1": c1, "c2": c2, "validation_f1": score, "train_s": round(seconds, 1)}
        )
        logger.info(
            "CRF grid point %d/%d c1=%.3f c2=%.3f validation_f1=%.4f train_s=%.1f",
            number,
            len(pairs),
            c1,
            c2,
            score,
            seconds,
        )
        if best is None or score > best[0]:
            best = (score, path)
            result.c1, result.c2 = c1, c2
    assert best is not None, "the grid has at least one pair"
    return best[1], result
