"""Fine-tune an encoder for token classification with the transformers ``Trainer``.

Each word's label sits on its first sub-token and every other token is ignored by the loss
(``nlu.alignment.align_labels``), so the loss and the metrics are per word. With validation
data, the model is evaluated after each epoch and the epoch with the best entity F1 is kept.
On a 2-core CPU, one epoch over SNIPS's 13,084 sentences with all-MiniLM-L6-v2 takes a few
minutes. A CUDA device is used when present, unless ``config.device`` is set to ``cpu``.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    EvalPrediction,
    Trainer,
    TrainingArguments,
    set_seed,
)

from finetune.ner.config import NerTrainingConfig
from finetune.ner.evaluation import entity_f1
from nlu.alignment import IGNORE_INDEX, align_labels
from nlu.taggers.errors import TaggerLoadError
from nlu.taggers.transformer import describe_missing_model, resolve_base_model
from nlu.types import TaggedSentence

logger = logging.getLogger(__name__)

_CHECKPOINT_DIR = "checkpoints"
# Optimizer steps between training-loss log lines.
_LOGGING_STEPS = 50
# Sentences checked for words the tokenizer cannot read, and the share of such words that
# triggers a warning.
_UNKNOWN_SAMPLE = 500
_MAX_UNKNOWN_SHARE = 0.2


@dataclass
class TransformerTrainingResult:
    """Outcome of transformer training.

    Attributes:
        device: The device it ran on.
        best_epoch: The epoch whose weights were kept, or None without validation data.
        history: One entry per evaluation: epoch, validation loss and entity F1.
        train_loss: Mean training loss over the run.
        truncated_sentences: Training sentences longer than ``max_length`` sub-tokens; their
            words past the limit took no part in training.
    """

    device: str
    best_epoch: float | None
    history: list[dict[str, float]] = field(default_factory=list)
    train_loss: float | None = None
    truncated_sentences: int = 0


class _EncodedSentences(torch.utils.data.Dataset):
    """Tokenized sentences with labels aligned to their first sub-tokens."""

    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self._rows[index]


def train_transformer(
    train: list[TaggedSentence],
    validation: list[TaggedSentence],
    out_dir: Path,
    *,
    labels: list[str],
    config: NerTrainingConfig,
) -> TransformerTrainingResult:
    """Fine-tune ``config.base_model`` and save model and tokenizer into ``out_dir``.

    Args:
        train: Training sentences.
        validation: Validation sentences; may be empty, which trains all epochs and keeps
            the last.
        out_dir: The tagger folder; it must exist. Checkpoints go to a ``checkpoints``
            sub-folder that is removed at the end.
        labels: All BIO tags, ``O`` included, in label-index order.
        config: Training settings.

    Returns:
        The device, the kept epoch and the validation history.

    Raises:
        TaggerLoadError: If the base model cannot be found or loaded.
    """
    set_seed(config.seed)
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer, model = _load_base_model(config, labels)
    label_ids = {label: index for index, label in enumerate(labels)}
    train_rows, truncated = _encode(tokenizer, train, label_ids, config.max_length)
    validation_rows, _ = _encode(tokenizer, validation, label_ids, config.max_length)
    _warn_on_unknown_words(tokenizer, train, config.base_model)
    if truncated:
        logger.warning(
            "%d of %d training sentences exceed max_length=%d sub-tokens; their later words "
            "are not trained on. Raise max_length to use them",
            truncated,
            len(train),
            config.max_length,
        )

    trainer = Trainer(
        model=model,
        args=_training_arguments(config, out_dir / _CHECKPOINT_DIR, device, bool(validation)),
        optimizers=(_build_optimizer(model, config), None),
        data_collator=DataCollatorForTokenClassification(tokenizer),
        train_dataset=_EncodedSentences(train_rows),
        eval_dataset=_EncodedSentences(validation_rows) if validation else None,
        processing_class=tokenizer,
        compute_metrics=_metrics_function(labels),
        preprocess_logits_for_metrics=_argmax_logits,
    )
    started = time.perf_counter()
    output = trainer.train()
    logger.info(
        "Trained transformer tagger sentences=%d epochs=%.1f device=%s train_s=%.1f",
        len(train),
        config.epochs,
        device,
        time.perf_counter() - started,
    )

    trainer.save_model(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    # save_model also pickles the TrainingArguments. The manifest records the settings, so
    # the folder keeps no pickle that a loader might be tempted to open.
    (out_dir / "training_args.bin").unlink(missing_ok=True)
    shutil.rmtree(out_dir / _CHECKPOINT_DIR, ignore_errors=True)
    history = _validation_history(trainer.state.log_history)
    return TransformerTrainingResult(
        device=device,
        best_epoch=_best_epoch(history),
        history=history,
        train_loss=round(float(output.training_loss), 4),
        truncated_sentences=truncated,
    )


def _load_base_model(config: NerTrainingConfig, labels: list[str]):
    location, local_only = resolve_base_model(
        config.base_model, allow_download=config.allow_download
    )
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=local_only)
        model = AutoModelForTokenClassification.from_pretrained(
            location,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: index for index, label in enumerate(labels)},
            local_files_only=local_only,
        )
    except (OSError, ValueError) as error:
        raise TaggerLoadError(
            describe_missing_model(config.base_model, local_only=local_only, error=error)
        ) from error
    if not tokenizer.is_fast:
        raise TaggerLoadError(
            f"base model {config.base_model!r} has no fast tokenizer (tokenizer.json), which "
            "word alignment needs: pick a model that ships one"
        )
    logger.info("Loaded base model %s with %d labels", config.base_model, len(labels))
    return tokenizer, model


def _encode(
    tokenizer, sentences: list[TaggedSentence], label_ids: dict[str, int], max_length: int
) -> tuple[list[dict[str, list[int]]], int]:
    rows = []
    truncated = 0
    for sentence in sentences:
        encoding = tokenizer(
            sentence.words, is_split_into_words=True, truncation=True, max_length=max_length
        )
        word_ids = encoding.word_ids()
        word_labels = [label_ids[tag] for tag in sentence.tags]
        covered = {word_id for word_id in word_ids if word_id is not None}
        truncated += bool(covered) and max(covered) < len(sentence.words) - 1
        rows.append({**encoding, "labels": align_labels(word_ids, word_labels)})
    return rows, truncated


def _warn_on_unknown_words(tokenizer, sentences: list[TaggedSentence], base_model: str) -> None:
    """Warn when the tokenizer maps many training words to its unknown token.

    English encoders do so with most Chinese characters, and such words carry no
    information for the model.
    """
    if tokenizer.unk_token is None:
        return
    words = [word for sentence in sentences[:_UNKNOWN_SAMPLE] for word in sentence.words]
    unknown = sum(tokenizer.tokenize(word) == [tokenizer.unk_token] for word in words)
    share = unknown / max(len(words), 1)
    if share > _MAX_UNKNOWN_SHARE:
        logger.warning(
            "%.0f%% of the words in the first %d training sentences map to the unknown token "
            "%s of %s, so the model cannot read them; use the CRF backend or an encoder "
            "trained on this language",
            100 * share,
            min(len(sentences), _UNKNOWN_SAMPLE),
            tokenizer.unk_token,
            base_model,
        )


def _training_arguments(
    config: NerTrainingConfig, checkpoint_dir: Path, device: str, has_validation: bool
) -> TrainingArguments:
    strategy = "epoch" if has_validation else "no"
    return TrainingArguments(
        output_dir=str(checkpoint_dir),
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,
        seed=config.seed,
        eval_strategy=strategy,
        save_strategy=strategy,
        save_total_limit=1,
        save_only_model=True,
        load_best_model_at_end=has_validation,
        metric_for_best_model="f1" if has_validation else None,
        greater_is_better=True,
        logging_steps=_LOGGING_STEPS,
        report_to="none",
        use_cpu=device == "cpu",
        dataloader_num_workers=0,
        dataloader_pin_memory=device != "cpu",
    )


def _build_optimizer(model: torch.nn.Module, config: NerTrainingConfig) -> torch.optim.AdamW:
    """Build AdamW with the classification head at ``config.head_learning_rate``.

    The Trainer adds its warm-up and linear decay schedule to every parameter group. Biases
    and LayerNorm weights get no weight decay, as in the Trainer's own optimizer.
    """
    head_names = {name for name, _ in model.named_parameters() if name.startswith("classifier.")}
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        is_decayed = parameter.ndim >= 2 and "LayerNorm" not in name
        groups.setdefault((name in head_names, is_decayed), []).append(parameter)

    head_rate = config.head_learning_rate or config.learning_rate
    return torch.optim.AdamW(
        [
            {
                "params": parameters,
                "lr": head_rate if is_head else config.learning_rate,
                "weight_decay": config.weight_decay if is_decayed else 0.0,
            }
            for (is_head, is_decayed), parameters in groups.items()
        ],
        lr=config.learning_rate,
    )


def _argmax_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Keep only the best label index per token, so evaluation stores no full logits."""
    return logits.argmax(dim=-1)


def _metrics_function(labels: list[str]):
    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        predicted_ids = np.asarray(prediction.predictions)
        gold_ids = np.asarray(prediction.label_ids)
        gold, predicted = [], []
        for predicted_row, gold_row in zip(predicted_ids, gold_ids, strict=True):
            is_word = gold_row != IGNORE_INDEX
            gold.append([labels[index] for index in gold_row[is_word]])
            predicted.append([labels[index] for index in predicted_row[is_word]])
        return {"f1": entity_f1(gold, predicted)}

    return compute_metrics


def _validation_history(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    return [
        {
            "epoch": round(float(entry["epoch"]), 2),
            "validation_loss": round(float(entry["eval_loss"]), 4),
            "validation_f1": round(float(entry["eval_f1"]), 4),
        }
        for entry in log_history
        if "eval_f1" in entry
    ]


def _best_epoch(history: list[dict[str, float]]) -> float | None:
    if not history:
        return None
    return max(history, key=lambda entry: entry["validation_f1"])["epoch"]
