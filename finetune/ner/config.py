"""Settings of one entity-tagger training run.

The resolved settings are saved in the tagger's ``nlu_model.json`` under ``training``, so a
model can be traced back to how it was trained.

Example:
    >>> config = NerTrainingConfig(epochs=10, learning_rate=1e-4)
    >>> config.to_dict()["epochs"]
    10
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

BACKENDS = ("transformer", "crf")
DECODINGS = ("viterbi", "argmax")
DEFAULT_BASE_MODEL = "packaged:all-MiniLM-L6-v2"
# Regularisation grid searched on the validation set when crf_c1 and crf_c2 are unset.
DEFAULT_CRF_GRID = ((0.05, 0.01), (0.05, 0.1), (0.2, 0.01), (0.2, 0.1))


@dataclass
class NerTrainingConfig:
    """Settings of an entity-tagger training run; each backend reads its own fields."""

    base_model: str = field(
        default=DEFAULT_BASE_MODEL,
        metadata={
            "help": "Encoder to fine-tune (transformer backend): 'packaged:all-MiniLM-L6-v2', "
            "a local folder or a Hugging Face id (needs the hub or its cache). The packaged "
            "model is English-only. No effect on the CRF backend."
        },
    )
    allow_download: bool = field(
        default=False,
        metadata={
            "help": "Whether a Hugging Face id may be downloaded from the hub. Off by default, "
            "so a model missing from the local cache fails at once instead of waiting."
        },
    )
    max_length: int = field(
        default=128,
        metadata={
            "help": "Transformer: maximum sub-word tokens per sentence, special tokens "
            "included; longer sentences are truncated in training and serving. CRF: maximum "
            "words tagged per text at serving (max(4 * max_length, 512))."
        },
    )
    epochs: float = field(
        default=8.0,
        metadata={
            "help": "Passes over the training data (transformer). With validation data the "
            "epoch with the best validation F1 is kept. transformers' default is 3; "
            "all-MiniLM-L6-v2 kept improving up to 6 epochs on SNIPS and 10 on ATIS."
        },
    )
    learning_rate: float = field(
        default=2e-4,
        metadata={
            "help": "Peak learning rate of the encoder after warm-up (transformer). "
            "transformers' default is 5e-5; with 8e-5 all-MiniLM-L6-v2 still underfit ATIS "
            "after 6 epochs (training loss 0.10), with 2e-4 it did not."
        },
    )
    head_learning_rate: float | None = field(
        default=2e-3,
        metadata={
            "help": "Peak learning rate of the fresh classification head (transformer); None "
            "uses learning_rate. On 300 ATIS sentences, 4 epochs reached test F1 0.35 "
            "with one rate of 1e-4 and 0.79 with the head at 3e-3."
        },
    )
    batch_size: int = field(
        default=32, metadata={"help": "Training sentences per optimizer step (transformer)."}
    )
    eval_batch_size: int = field(
        default=64, metadata={"help": "Sentences per forward pass in evaluation (transformer)."}
    )
    weight_decay: float = field(
        default=0.01,
        metadata={"help": "AdamW weight decay (transformer); transformers' default is 0."},
    )
    warmup_ratio: float = field(
        default=0.1,
        metadata={"help": "Share of the optimizer steps spent warming up, in [0, 1)."},
    )
    decoding: str = field(
        default="viterbi",
        metadata={
            "help": "How the transformer tagger picks tags from word probabilities at serving: "
            "'viterbi' takes the most probable sequence that BIO allows, 'argmax' the best "
            "tag per word. Validation F1 during training always uses argmax. No effect on the "
            "CRF, which decodes with its own transitions."
        },
    )
    seed: int = field(default=42, metadata={"help": "Seed of weight init and data order."})
    device: str | None = field(
        default=None,
        metadata={
            "help": "'cpu' or 'cuda' for the transformer backend; None uses CUDA when present. "
            "The CRF always trains on the CPU."
        },
    )
    crf_c1: float | None = field(
        default=None,
        metadata={
            "help": "L1 regularisation of the CRF. Set both crf_c1 and crf_c2 to skip the "
            "grid search; unset, the pair from crf_grid with the best validation F1 is used "
            "(or 0.05 and 0.01 without validation data)."
        },
    )
    crf_c2: float | None = field(
        default=None, metadata={"help": "L2 regularisation of the CRF; see crf_c1."}
    )
    crf_grid: tuple[tuple[float, float], ...] = field(
        default=DEFAULT_CRF_GRID,
        metadata={"help": "(c1, c2) pairs tried on the validation data when c1/c2 are unset."},
    )
    crf_max_iterations: int = field(
        default=150,
        metadata={"help": "L-BFGS iterations of CRF training; sklearn-crfsuite's default is 100."},
    )

    def __post_init__(self) -> None:
        _validate_positive(
            max_length=self.max_length,
            epochs=self.epochs,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            eval_batch_size=self.eval_batch_size,
            crf_max_iterations=self.crf_max_iterations,
        )
        if self.head_learning_rate is not None and self.head_learning_rate <= 0:
            raise ValueError(
                f"head_learning_rate must be positive or None, got {self.head_learning_rate}"
            )
        if self.decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {DECODINGS}, got {self.decoding!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if (self.crf_c1 is None) != (self.crf_c2 is None):
            raise ValueError(
                f"crf_c1={self.crf_c1} and crf_c2={self.crf_c2}: set both to fix the CRF's "
                "regularisation, or neither to search crf_grid"
            )
        if not self.crf_grid:
            raise ValueError("crf_grid is empty: give at least one (c1, c2) pair")
        self.crf_grid = tuple((float(c1), float(c2)) for c1, c2 in self.crf_grid)
        for c1, c2 in self.crf_grid:
            if c1 < 0 or c2 < 0:
                raise ValueError(f"crf_grid pair ({c1}, {c2}) is negative: use values >= 0")

    @property
    def crf_max_words(self) -> int:
        """Words a CRF tagger tags per text at serving time."""
        return max(4 * self.max_length, 512)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-ready dictionary."""
        data = dataclasses.asdict(self)
        data["crf_grid"] = [list(pair) for pair in self.crf_grid]
        return data


def _validate_positive(**values: float) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
