"""Fine-tune the dialog model on a chat-format dataset with packed rows.

``train`` reads top to bottom: config → data → model → train → evaluate → save.
The dataset folder is the one ``finetune.dataset.write_dataset`` writes, and the
model is a local folder, so no code here downloads from a model hub.

Example:
    >>> config = TrainingConfig(model="packaged:SmolLM2-135M-Instruct",
    ...                         dataset_dir=Path("data/sft"), output_dir=Path("runs/a"))
    >>> result = train(config, model_path=Path("models/SmolLM2-135M-Instruct"))
    >>> result.model_dir
    PosixPath('runs/a/model')
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    EarlyStoppingCallback,
    PreTrainedModel,
    Trainer,
    TrainingArguments,
    set_seed,
)

from finetune.answer_loss import answer_only_loss
from finetune.config import TrainingConfig
from finetune.distributed import distributed_training_arguments, sum_over_processes
from finetune.packing import PackedBatch, PaddedBatch, group_by_length, pack_examples
from finetune.tokenization import IGNORE_INDEX, tokenize_examples

logger = logging.getLogger(__name__)

TRAIN_FILE = "train.jsonl"
VALIDATION_FILE = "validation.jsonl"
MODEL_DIR = "model"
CONFIG_FILE = "training_config.json"
REPORT_FILE = "train_report.json"
# Checkpoints kept in output_dir. With load_best_model_at_end the best one is kept as well.
_SAVE_TOTAL_LIMIT = 2


@dataclass
class TrainingResult:
    """Outcome of one training run, also written to ``train_report.json``.

    Attributes:
        model_dir: Folder of the saved model and tokenizer (LoRA adapters merged).
        train_loss_history: (optimizer step, training loss) for every logged step.
        eval_loss_history: (optimizer step, validation loss) for every evaluation,
            the final one included; empty when the validation split is empty.
        steps: Optimizer steps reached, counting steps before a resume.
        answer_tokens: Tokens with a label (labels != -100) in the rows trained in
            this call, summed over all processes. Rows trained before a resume are
            not counted.
        input_tokens: All tokens of the rows trained in this call, summed over all
            processes.
        answer_tokens_per_s: ``answer_tokens`` divided by the training seconds.
        train_seconds: Wall-clock seconds of this process's training loop,
            evaluation excluded; the report has the main process's value.
        num_processes: Processes that trained together, 1 without torchrun or
            ``accelerate launch``.
    """

    model_dir: Path
    train_loss_history: list[tuple[int, float]] = field(default_factory=list)
    eval_loss_history: list[tuple[int, float]] = field(default_factory=list)
    steps: int = 0
    answer_tokens: int = 0
    input_tokens: int = 0
    answer_tokens_per_s: float = 0.0
    train_seconds: float = 0.0
    num_processes: int = 1


class PackedRowDataset(torch.utils.data.Dataset):
    """Packed rows as a map-style dataset, where each item is already one whole row."""

    def __init__(self, rows: Sequence[PackedBatch | PaddedBatch]) -> None:
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> PackedBatch | PaddedBatch:
        return self.rows[index]


def collate_packed_row(items: Sequence[PackedBatch | PaddedBatch]) -> dict[str, Any]:
    """Return the model inputs of a batch of exactly one packed row, with the cache off.

    Raises:
        ValueError: If the batch does not have exactly one row; set
            per_device_train_batch_size and per_device_eval_batch_size to 1.
    """
    if len(items) != 1:
        raise ValueError(
            f"a batch must contain exactly 1 packed row, got {len(items)}: "
            "set per_device_train_batch_size and per_device_eval_batch_size to 1"
        )
    return items[0].model_inputs()


class PackedRowTrainer(Trainer):
    """A Trainer with the answer-only loss that counts the tokens of the rows it trains on."""

    # answer_only_loss divides by the answer tokens of the accumulated batch when the
    # Trainer passes them, so the Trainer must not divide by the accumulation steps again.
    loss_is_scaled_for_ga = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answer_tokens = 0
        self.input_tokens = 0
        self._first_step_started: float | None = None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add this process's answer tokens per second to each training log line.

        The progress bar prints these lines next to its step count and time left.
        """
        if "loss" in logs and self._first_step_started is not None:
            elapsed = time.perf_counter() - self._first_step_started
            logs["answer_tokens_per_s"] = round(self.answer_tokens / max(elapsed, 1e-9), 1)
        super().log(logs, start_time)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: D102
        if model.training:
            if self._first_step_started is None:
                self._first_step_started = time.perf_counter()
            self.answer_tokens += int((inputs["labels"] != IGNORE_INDEX).sum())
            self.input_tokens += int(inputs["input_ids"].numel())
            if num_items_in_batch is None:
                # Without the Trainer's count, scale each row as a mean over the steps.
                num_items_in_batch = (
                    int((inputs["labels"][:, 1:] != IGNORE_INDEX).sum())
                    * self.current_gradient_accumulation_steps
                )
        loss, outputs = answer_only_loss(model, inputs, num_items_in_batch=num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # The count covers every process and DDP averages gradients over them.
            loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss


def train(config: TrainingConfig, *, model_path: Path) -> TrainingResult:
    """Fine-tune the model in ``model_path`` and save the result under ``config.output_dir``.

    Writes checkpoints ``checkpoint-*`` and, at the end, ``model/`` (safetensors
    weights with LoRA adapters merged, plus the tokenizer), ``training_config.json``
    and ``train_report.json``. If ``output_dir`` already has a checkpoint, training
    resumes from the latest one. Memory, as an estimate: LoRA needs about the model
    size plus the activations of one packed row, and method "full" about 4x the
    model size (weights, gradients and two AdamW moments in float32).

    Under torchrun or ``accelerate launch`` every process calls ``train``. Each one
    trains on its shard of the packed rows, only the main process writes ``model/``,
    ``training_config.json`` and ``train_report.json``, and the others wait until it
    has written them. Every process returns the token counts summed over all processes.

    Args:
        config: The run's settings; ``config.model`` is recorded but not loaded.
        model_path: Local folder of a causal LM and its tokenizer with a chat template.

    Returns:
        Loss histories, step and token counts, and the saved model folder.

    Raises:
        FileNotFoundError: If ``model_path``, train.jsonl or validation.jsonl is missing.
        ValueError: If the train split has no trainable example, a line is not a chat
            example, bf16 is "true" without a bf16-capable GPU, or the tokenizer has
            no chat template.
        ImportError: If method is "lora" and peft is not installed.
    """
    _validate_model_path(model_path)
    train_path, validation_path = _validate_dataset_dir(config.dataset_dir)
    use_bf16 = _resolve_bf16(config.bf16)
    set_seed(config.seed)

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    train_rows = _load_packed_rows(train_path, tokenizer, config)
    if not train_rows:
        raise ValueError(
            f"train split {train_path} has no trainable example: write chat examples with "
            "'supportbot finetune dataset' or raise max_seq_len if all answers were too long"
        )
    eval_rows = _load_packed_rows(validation_path, tokenizer, config)
    if not eval_rows:
        logger.warning(
            "validation split %s is empty, so evaluation and early stopping are off: "
            "write validation examples to enable them",
            validation_path,
        )

    model = _load_model(config, model_path)

    trainer = _build_trainer(config, model, train_rows, eval_rows, use_bf16=use_bf16)
    resume = any(config.output_dir.glob("checkpoint-*"))
    if resume:
        logger.info("resuming from the latest checkpoint in %s", config.output_dir)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=True if resume else None)
    train_seconds = time.perf_counter() - started

    if eval_rows:
        trainer.evaluate()

    result = _build_result(trainer, config.output_dir / MODEL_DIR, train_seconds)
    # Only the main process writes, so processes never write the same file at once.
    if trainer.is_world_process_zero():
        _save_model(trainer.model, tokenizer, config)
        _write_report(result, config.output_dir / REPORT_FILE)
        logger.info(
            "trained %d steps in %.1f s, %d answer tokens at %.1f tokens/s over %d "
            "process(es), saved to %s",
            result.steps,
            result.train_seconds,
            result.answer_tokens,
            result.answer_tokens_per_s,
            result.num_processes,
            result.model_dir,
        )
    # The other processes return only once the model folder is complete.
    trainer.accelerator.wait_for_everyone()
    return result


def _validate_model_path(model_path: Path) -> None:
    if not (model_path / "config.json").is_file():
        raise FileNotFoundError(
            f"model folder {model_path} is missing or has no config.json: give a local folder "
            "saved with save_pretrained, such as a converted packaged model"
        )


def _validate_dataset_dir(dataset_dir: Path) -> tuple[Path, Path]:
    paths = (dataset_dir / TRAIN_FILE, dataset_dir / VALIDATION_FILE)
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(
                f"dataset file {path} is missing: write the dataset with "
                "'supportbot finetune dataset' or set dataset_dir to the folder that has it"
            )
    return paths


def _resolve_bf16(choice: str) -> bool:
    is_supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if choice == "true" and not is_supported:
        raise ValueError(
            "bf16='true' needs a CUDA GPU with bfloat16 support and none was found: "
            "set bf16 to 'auto' or 'false'"
        )
    return choice != "false" and is_supported


def _read_conversations(path: Path) -> list[list[dict[str, str]]]:
    conversations = []
    with path.open(encoding="utf-8") as file:
        for line_number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
                raise ValueError(
                    f"invalid line {line_number} of {path}: expected an object with a "
                    "'messages' list as written by 'supportbot finetune dataset'"
                )
            conversations.append(record["messages"])
    return conversations


def _load_packed_rows(
    path: Path, tokenizer: Any, config: TrainingConfig
) -> list[PackedBatch | PaddedBatch]:
    conversations = _read_conversations(path)
    result = tokenize_examples(conversations, tokenizer, max_seq_len=config.max_seq_len)
    if config.batching == "length_grouped":
        pad_token_id = tokenizer.pad_token_id
        if pad_token_id is None:
            pad_token_id = tokenizer.eos_token_id
        return group_by_length(
            result.examples,
            max_tokens=config.per_device_batch_tokens,
            pad_token_id=pad_token_id,
            seed=config.seed,
        )
    return pack_examples(result.examples, max_tokens=config.per_device_batch_tokens)


def _load_model(config: TrainingConfig, model_path: Path) -> torch.nn.Module:
    # Weights stay in float32 and bf16 runs use autocast (TrainingArguments.bf16), so
    # AdamW updates in full fine-tuning are not rounded away in bfloat16 weights.
    # NOTE: bf16 is off on CPU, so the tests never run this path with bf16 on.
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    if config.method == "full":
        logger.info("full fine-tuning of %d parameters", model.num_parameters())
        return model

    from peft import LoraConfig, get_peft_model

    lora_config = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora_config)
    trainable, total = model.get_nb_trainable_parameters()
    logger.info("LoRA trains %d of %d parameters", trainable, total)
    return model


def _build_trainer(
    config: TrainingConfig,
    model: torch.nn.Module,
    train_rows: Sequence[PackedBatch | PaddedBatch],
    eval_rows: Sequence[PackedBatch | PaddedBatch],
    *,
    use_bf16: bool,
) -> PackedRowTrainer:
    # transformers' Trainer rather than a hand-written loop: it brings gradient
    # accumulation, the cosine schedule with warm-up, checkpoints that resume with
    # optimizer, scheduler and RNG state, best-model reloading and early stopping.
    is_periodic_eval = bool(eval_rows) and config.eval_every_steps > 0
    strategy = "steps" if is_periodic_eval else "no"
    args = TrainingArguments(
        output_dir=str(config.output_dir),
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio of all steps
        lr_scheduler_type="cosine",
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_train_epochs=config.num_epochs,
        max_steps=config.max_steps if config.max_steps is not None else -1,
        per_device_train_batch_size=1,  # each item is a whole packed row
        per_device_eval_batch_size=1,
        eval_strategy=strategy,
        eval_steps=config.eval_every_steps if is_periodic_eval else None,
        save_strategy=strategy,
        save_steps=config.eval_every_steps if is_periodic_eval else 500,
        save_total_limit=_SAVE_TOTAL_LIMIT,
        load_best_model_at_end=is_periodic_eval,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        prediction_loss_only=True,  # keeps eval from gathering (1, tokens, vocab) logits
        label_names=["labels"],  # without a label name, prediction_step returns no eval loss
        logging_steps=1,
        report_to="none",
        remove_unused_columns=False,  # the collator must keep position_ids
        dataloader_pin_memory=torch.cuda.is_available(),
        seed=config.seed,
        bf16=use_bf16,
        # Every trainable weight takes part in each forward pass, LoRA adapters on all
        # linear layers included. DDP can then skip its search for unused parameters.
        ddp_find_unused_parameters=False,
        **distributed_training_arguments(),
    )
    callbacks = []
    if is_periodic_eval and config.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(config.early_stopping_patience))
    return PackedRowTrainer(
        model=model,
        args=args,
        data_collator=collate_packed_row,
        train_dataset=PackedRowDataset(train_rows),
        eval_dataset=PackedRowDataset(eval_rows) if eval_rows else None,
        callbacks=callbacks,
    )


def _save_model(model: torch.nn.Module, tokenizer: Any, config: TrainingConfig) -> Path:
    if config.method == "lora":
        model = model.merge_and_unload()
    if not isinstance(model, PreTrainedModel):
        raise TypeError(f"expected a transformers model to save, got {type(model).__name__}")

    model_dir = config.output_dir / MODEL_DIR
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    config.to_json(config.output_dir / CONFIG_FILE)
    return model_dir


def _build_result(
    trainer: PackedRowTrainer, model_dir: Path, train_seconds: float
) -> TrainingResult:
    """Collect the run's figures, summing the token counts of all processes.

    Every process must call this, because the sum is a collective operation.
    """
    num_processes = trainer.accelerator.num_processes
    if num_processes > 1:
        logger.info(
            "process %d of %d trained on %d answer tokens, %d input tokens",
            trainer.accelerator.process_index,
            num_processes,
            trainer.answer_tokens,
            trainer.input_tokens,
        )
    answer_tokens, input_tokens = sum_over_processes(
        trainer.accelerator, [trainer.answer_tokens, trainer.input_tokens]
    )
    history = trainer.state.log_history
    return TrainingResult(
        model_dir=model_dir,
        train_loss_history=[(entry["step"], entry["loss"]) for entry in history if "loss" in entry],
        eval_loss_history=[
            (entry["step"], entry["eval_loss"]) for entry in history if "eval_loss" in entry
        ],
        steps=trainer.state.global_step,
        answer_tokens=answer_tokens,
        input_tokens=input_tokens,
        answer_tokens_per_s=answer_tokens / max(train_seconds, 1e-9),
        train_seconds=train_seconds,
        num_processes=num_processes,
    )


def _write_report(result: TrainingResult, path: Path) -> None:
    values = asdict(result)
    values["model_dir"] = str(result.model_dir)
    path.write_text(json.dumps(values, indent=2) + "\n", encoding="utf-8")
