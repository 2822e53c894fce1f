"""Settings of one dialog-model fine-tuning run.

The resolved config is saved as JSON next to every checkpoint, so a run can be
reproduced and a checkpoint traced back to its settings.

Example:
    >>> config = TrainingConfig(model="packaged:SmolLM2-135M-Instruct",
    ...                         dataset_dir=Path("data/sft"), output_dir=Path("runs/a"))
    >>> config.to_json(config.output_dir / "training_config.json")
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

METHODS = ("lora", "full")
BATCHINGS = ("packed", "length_grouped")
BF16_CHOICES = ("auto", "true", "false")
_PATH_FIELDS = ("dataset_dir", "output_dir")


@dataclass
class TrainingConfig:
    """Settings of a supervised fine-tuning run of the dialog model."""

    model: str = field(
        metadata={
            "help": "Model to fine-tune: a local folder, a Hugging Face id (needs the hub "
            "or its cache) or 'packaged:SmolLM2-135M-Instruct'."
        }
    )
    dataset_dir: Path = field(
        metadata={
            "help": "Folder with train.jsonl and validation.jsonl written by "
            "'supportbot finetune dataset'."
        }
    )
    output_dir: Path = field(
        metadata={"help": "Folder for checkpoints, logs and the saved config; created if missing."}
    )
    method: str = field(
        default="lora",
        metadata={
            "help": "'lora' trains low-rank adapters (needs peft) and keeps the base weights; "
            "'full' updates every weight and needs about 4x the model size in memory."
        },
    )
    lora_r: int = field(
        default=16,
        metadata={
            "help": "Rank of the LoRA matrices. No effect with method='full'. peft's default is 8."
        },
    )
    lora_alpha: int = field(
        default=32,
        metadata={
            "help": "LoRA scaling numerator; updates are scaled by lora_alpha / lora_r. "
            "No effect with method='full'. peft's default is 8."
        },
    )
    lora_dropout: float = field(
        default=0.05,
        metadata={
            "help": "Dropout on the LoRA input, in [0, 1); 0 disables it. "
            "No effect with method='full'."
        },
    )
    learning_rate: float = field(
        default=2e-4,
        metadata={
            "help": "Peak learning rate after warm-up. 2e-4 suits LoRA; use about 2e-5 with "
            "method='full'. transformers' default is 5e-5."
        },
    )
    warmup_ratio: float = field(
        default=0.03,
        metadata={
            "help": "Fraction of the optimizer steps with a linear warm-up, in [0, 1); "
            "0 disables warm-up."
        },
    )
    num_epochs: float = field(
        default=3.0,
        metadata={"help": "Passes over the training set; ignored when max_steps is set."},
    )
    max_steps: int | None = field(
        default=None,
        metadata={
            "help": "Optimizer steps to run; overrides num_epochs. None trains for num_epochs."
        },
    )
    per_device_batch_tokens: int = field(
        default=4096,
        metadata={
            "help": "Maximum tokens in one packed row per device and forward pass; "
            "must be at least max_seq_len so every example fits in a row."
        },
    )
    batching: str = field(
        default="packed",
        metadata={
            "help": "'packed' concatenates examples into rows without padding, which suits "
            "GPUs; 'length_grouped' pads batches of examples of similar length, which "
            "was faster on the CPU because attention stays within each example."
        },
    )
    gradient_accumulation_steps: int = field(
        default=4,
        metadata={
            "help": "Forward passes whose gradients are summed per optimizer step; "
            "1 disables accumulation."
        },
    )
    max_seq_len: int = field(
        default=1024,
        metadata={
            "help": "Maximum tokens of one example. Longer examples lose their oldest context "
            "turns; an example whose answer alone reaches this length is skipped."
        },
    )
    eval_every_steps: int = field(
        default=100,
        metadata={"help": "Optimizer steps between validation runs; 0 evaluates only at the end."},
    )
    early_stopping_patience: int | None = field(
        default=3,
        metadata={
            "help": "Validation runs without a lower validation loss before training stops; "
            "None disables early stopping."
        },
    )
    seed: int = field(
        default=42,
        metadata={"help": "Seed for data shuffling, adapter initialisation and dropout."},
    )
    bf16: str = field(
        default="auto",
        metadata={
            "help": "'auto' uses bfloat16 where the GPU supports it and float32 on CPU; "
            "'true' requires it; 'false' always trains in float32."
        },
    )

    def __post_init__(self) -> None:
        self.dataset_dir = Path(self.dataset_dir)
        self.output_dir = Path(self.output_dir)
        self.bf16 = str(self.bf16).lower()

        _validate_choice("method", self.method, METHODS)
        _validate_choice("batching", self.batching, BATCHINGS)
        _validate_choice("bf16", self.bf16, BF16_CHOICES)
        if not self.model:
            raise ValueError(
                "invalid model '': give a model folder, a hub id or a packaged model name"
            )
        self._validate_lora()
        self._validate_schedule()
        self._validate_batching()

    def _validate_lora(self) -> None:
        _validate_positive("lora_r", self.lora_r)
        _validate_positive("lora_alpha", self.lora_alpha)
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(
                f"invalid lora_dropout {self.lora_dropout}: use a value in [0, 1), e.g. 0.05"
            )

    def _validate_schedule(self) -> None:
        _validate_positive("learning_rate", self.learning_rate)
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(
                f"invalid warmup_ratio {self.warmup_ratio}: use a value in [0, 1), e.g. 0.03"
            )
        if self.max_steps is None:
            _validate_positive("num_epochs", self.num_epochs)
        else:
            _validate_positive("max_steps", self.max_steps)
        if self.eval_every_steps < 0:
            raise ValueError(
                f"invalid eval_every_steps {self.eval_every_steps}: use 0 to evaluate only at "
                "the end or a positive step count"
            )
        if self.early_stopping_patience is not None:
            _validate_positive("early_stopping_patience", self.early_stopping_patience)

    def _validate_batching(self) -> None:
        _validate_positive("max_seq_len", self.max_seq_len)
        _validate_positive("per_device_batch_tokens", self.per_device_batch_tokens)
        _validate_positive("gradient_accumulation_steps", self.gradient_accumulation_steps)
        if self.per_device_batch_tokens < self.max_seq_len:
            raise ValueError(
                f"per_device_batch_tokens {self.per_device_batch_tokens} is smaller than "
                f"max_seq_len {self.max_seq_len}, so the longest examples fit in no row: "
                "raise per_device_batch_tokens or lower max_seq_len"
            )

    def to_json(self, path: Path) -> None:
        """Write the config as indented JSON, creating the parent folder.

        Raises:
            OSError: If the file cannot be written.
        """
        values = dataclasses.asdict(self)
        for name in _PATH_FIELDS:
            values[name] = str(values[name])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, path: Path) -> TrainingConfig:
        """Read a config written by ``to_json``.

        Raises:
            OSError: If the file cannot be read.
            ValueError: If it is not a JSON object, has unknown fields or invalid values.
        """
        values: Any = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(values, dict):
            raise ValueError(f"invalid training config {path}: expected a JSON object")
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"invalid training config {path}: unknown fields {unknown}; "
                f"remove them or use one of {sorted(known)}"
            )
        return cls(**values)


def _validate_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"invalid {name} {value!r}: use one of {list(choices)}")


def _validate_positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"invalid {name} {value}: use a value greater than 0")
