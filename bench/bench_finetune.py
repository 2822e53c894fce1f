"""Benchmark LoRA training throughput: packed rows against batches padded to the longest example.

Run from the repository root:

    SUPPORTBOT_DATA_DIR=/path/to/data python bench/bench_finetune.py --json-out bench-finetune.json

Every variant fine-tunes the packaged SmolLM2-135M-Instruct with LoRA (r 16, alpha 32,
all linear layers, dropout 0) on the same examples, with loss on the answer tokens only.
For the first two, the examples are split into groups of ``--batch-examples``, one group
per optimizer step, and both variants see the groups in the same order:

- packed: each group is one row of concatenated examples, with position ids that restart
  per example (``finetune.packing.pack_examples`` and ``finetune.trainer.collate_packed_row``);
- padded: each group is right-padded to its longest example by transformers'
  ``DataCollatorForSeq2Seq``, with an attention mask.

So these two variants compute the same loss on the same tokens, and their per-step
losses should agree up to float rounding. A third variant, packed-rows, packs all
examples in order into rows of up to ``--row-tokens`` tokens, as ``supportbot finetune
train`` does, but takes one optimizer step per row instead of 4. It trains on the same
examples in fewer steps, so only its throughput is comparable. A fourth variant, grouped,
sorts the examples by length and pads batches of up to ``--row-tokens`` tokens, as
``finetune train`` does with ``batching="length_grouped"``; its throughput is comparable
in the same way. The packed, packed-rows and grouped variants train with
``finetune.trainer.PackedRowTrainer`` and its answer-only logits. Each variant
runs in its own process, so its peak RSS is its own. Training runs on CUDA when
present, else on the CPU.

The examples come from ``--dataset DIR`` (a folder written by ``supportbot finetune
dataset``) or, by default, from a dataset built here from the first SGD dialog file
under ``--data-dir`` (128 dialogs, imported into a temporary SQLite database, with
near-duplicate merging off). ``--examples`` of its train split are drawn with a fixed seed.

On 2 CPU cores that other jobs keep busy, use ``--threads 1``. With two threads per
process, a parallel operation waits whenever another process runs on one of the cores.
That made a forward and backward pass of 64 tokens through SmolLM2 take 15 s instead
of 0.8 s with one thread (torch 2.13.0, load average about 4).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODEL = "packaged:SmolLM2-135M-Instruct"
VARIANTS = ("padded", "packed", "packed-rows", "grouped")

logger = logging.getLogger(__name__)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset",
        type=Path,
        default=None,
        help="Folder with train.jsonl from `supportbot finetune dataset`. Default: build one "
        "from the first SGD dialog file under --data-dir.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ["SUPPORTBOT_DATA_DIR"])
        if os.environ.get("SUPPORTBOT_DATA_DIR")
        else None,
        help="Folder of the public datasets; default: $SUPPORTBOT_DATA_DIR.",
    )

    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="Model cache with the converted SmolLM2 (about 540 MB, converted in about 20 s "
        "when missing). Default: the configured supportbot model cache, <home>/models.",
    )

    parser.add_argument(
        "--examples",
        type=int,
        default=96,
        help="Training examples drawn; with the defaults, 12 optimizer steps per variant.",
    )
    parser.add_argument(
        "--batch-examples", type=int, default=8, help="Examples per optimizer step."
    )
    parser.add_argument("--max-seq-len", type=int, default=512, help="Maximum tokens per example.")
    parser.add_argument(
        "--row-tokens",
        type=int,
        default=4096,
        help="Maximum tokens per row of the packed-rows variant, as `finetune train "
        "--batch-tokens`; at least --max-seq-len.",
    )
    parser.add_argument("--seed", type=int, default=42, help="Seed of the draw and of LoRA.")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads per variant. Default: torch's default, one per core. "
        "Use 1 when other jobs share the cores.",
    )
    parser.add_argument("--json-out", type=Path, default=None, help="Write the results here.")

    # Options of the worker process that trains one variant.
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--model-path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--examples-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    for name in ("examples", "batch_examples", "max_seq_len", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.row_tokens < args.max_seq_len:
        parser.error(f"--row-tokens {args.row_tokens} must be at least --max-seq-len")
    return args


# ---------------------------------------------------------------- dataset and model


def build_sgd_dataset(data_dir: Path, out_dir: Path) -> Path:
    """Import the first SGD dialog file into a temporary database and write a dataset."""
    from finetune.build import DatasetConfig, build_dataset
    from storage.db import create_db_engine, create_session_factory, upgrade_schema
    from storage.dialog_import import import_dialogs
    from ui.demo.sources import SGD_FILES

    path = SGD_FILES[0].find_in(data_dir)
    if path is None:
        raise SystemExit(
            f"SGD file {SGD_FILES[0].relative_path} not found under {data_dir}: set "
            "--data-dir or SUPPORTBOT_DATA_DIR to the public datasets, or give --dataset"
        )
    engine = create_db_engine(f"sqlite:///{out_dir / 'bench.db'}")
    try:
        upgrade_schema(engine)
        session_factory = create_session_factory(engine)
        import_dialogs(session_factory, [path], format="sgd", show_progress=False)
        build_dataset(
            session_factory,
            DatasetConfig(out_dir=out_dir / "dataset", duplicate_similarity=1.0),
        )
    finally:
        engine.dispose()
    return out_dir / "dataset"


def draw_conversations(dataset_dir: Path, count: int, seed: int) -> list[list[dict[str, str]]]:
    lines = (dataset_dir / "train.jsonl").read_text(encoding="utf-8").splitlines()
    conversations = [json.loads(line)["messages"] for line in lines if line.strip()]
    if len(conversations) < count:
        raise SystemExit(
            f"{dataset_dir / 'train.jsonl'} has {len(conversations)} examples, fewer than "
            f"--examples {count}: lower --examples or use a larger dataset"
        )
    return random.Random(seed).sample(conversations, count)


def resolve_model(cache_dir: Path | None) -> Path:
    from bot.config import Settings
    from bot.generation.model_cache import resolve_model_path

    return resolve_model_path(MODEL, cache_dir or Settings().model_cache_dir)


# ---------------------------------------------------------------- worker: one variant


def load_lora_model(model_path: Path, seed: int):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, set_seed

    from finetune.config import TrainingConfig

    # The training defaults, so that the benchmark follows changes to them.
    defaults = TrainingConfig(model=MODEL, dataset_dir=Path("."), output_dir=Path("."))
    set_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    # Dropout is 0, unlike the training default of 0.05, because dropout masks depend on
    # the batch shape and would make the losses of the two variants differ.
    lora_config = LoraConfig(
        r=defaults.lora_r,
        lora_alpha=defaults.lora_alpha,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora_config), defaults


def build_batches(
    variant: str, groups: list, tokenizer, row_tokens: int
) -> tuple[list, Any, dict[str, int]]:
    """Return one dataset item per optimizer step, the collator, and token counts."""
    from transformers import DataCollatorForSeq2Seq

    from finetune.packing import group_by_length, pack_examples
    from finetune.tokenization import IGNORE_INDEX
    from finetune.trainer import collate_packed_row

    real_tokens = sum(len(example.input_ids) for group in groups for example in group)
    if variant == "grouped":
        examples = [example for group in groups for example in group]
        pad_token_id = tokenizer.pad_token_id
        if pad_token_id is None:
            pad_token_id = tokenizer.eos_token_id
        batches = group_by_length(
            examples, max_tokens=row_tokens, pad_token_id=pad_token_id, seed=0
        )
        answer_tokens = sum(int((batch.labels != IGNORE_INDEX).sum()) for batch in batches)
        padded_tokens = sum(batch.input_ids.numel() for batch in batches)
        counts = {"input_tokens": padded_tokens, "real_tokens": real_tokens}
        return batches, collate_packed_row, {**counts, "answer_tokens": answer_tokens}
    if variant.startswith("packed"):
        if variant == "packed-rows":
            examples = [example for group in groups for example in group]
            rows = pack_examples(examples, max_tokens=row_tokens)
        else:
            rows = [
                pack_examples(group, max_tokens=sum(len(ex.input_ids) for ex in group))[0]
                for group in groups
            ]
        answer_tokens = sum(int((row.labels != IGNORE_INDEX).sum()) for row in rows)
        counts = {"input_tokens": real_tokens, "real_tokens": real_tokens}
        return rows, collate_packed_row, {**counts, "answer_tokens": answer_tokens}

    # Right padding keeps each example's positions at 0..n-1, as in the packed rows.
    tokenizer.padding_side = "right"
    padder = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=IGNORE_INDEX)
    items = [
        [{"input_ids": example.input_ids, "labels": example.labels} for example in group]
        for group in groups
    ]

    def collate_padded_group(batch: list) -> dict[str, Any]:
        return {**padder(batch[0]), "use_cache": False}

    input_tokens = sum(len(group) * max(len(e.input_ids) for e in group) for group in groups)
    # The loss never predicts an example's first token, so its label does not count.
    answer_tokens = sum(
        sum(label != IGNORE_INDEX for label in example.labels[1:])
        for group in groups
        for example in group
    )
    counts = {"input_tokens": input_tokens, "real_tokens": real_tokens}
    return items, collate_padded_group, {**counts, "answer_tokens": answer_tokens}


def run_worker(args: argparse.Namespace) -> None:
    import torch
    from transformers import AutoTokenizer, Trainer, TrainingArguments

    from finetune.tokenization import tokenize_examples
    from finetune.trainer import PackedRowTrainer

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    conversations = json.loads(args.examples_file.read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(args.model_path)
    tokenized = tokenize_examples(conversations, tokenizer, max_seq_len=args.max_seq_len)
    examples = tokenized.examples
    size = args.batch_examples
    groups = [examples[start : start + size] for start in range(0, len(examples), size)]
    items, collator, counts = build_batches(args.worker, groups, tokenizer, args.row_tokens)
    model, defaults = load_lora_model(args.model_path, args.seed)

    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as output_dir:
        training_args = TrainingArguments(
            output_dir=output_dir,
            learning_rate=defaults.learning_rate,
            warmup_steps=defaults.warmup_ratio,
            lr_scheduler_type="cosine",
            max_steps=len(items),
            per_device_train_batch_size=1,  # each item is a whole group or row
            gradient_accumulation_steps=1,
            logging_steps=1,
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            remove_unused_columns=False,
            dataloader_pin_memory=False,
            disable_tqdm=True,
            seed=args.seed,
        )
        # The packed variants train as `finetune train` does, with the answer-only loss
        # that computes logits only for answer positions. The padded one is a plain
        # Trainer with the model's own loss over all positions.
        trainer_class = PackedRowTrainer if args.worker != "padded" else Trainer
        trainer = trainer_class(
            model=model, args=training_args, data_collator=collator, train_dataset=items
        )
        started = time.perf_counter()
        cpu_started = time.process_time()
        trainer.train()
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started

    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    result = {
        "variant": args.worker,
        "examples": len(examples),
        "rejected": dict(tokenized.rejected),
        "truncated": tokenized.truncated,
        "steps": trainer.state.global_step,
        "seconds": seconds,
        # CPU time of all threads of the worker, which other jobs disturb less than wall time.
        "cpu_seconds": cpu_seconds,
        "torch_threads": torch.get_num_threads(),
        **counts,
        "padding_share": 1.0 - counts["real_tokens"] / counts["input_tokens"],
        "answer_tokens_per_s": counts["answer_tokens"] / seconds,
        "input_tokens_per_s": counts["input_tokens"] / seconds,
        # ru_maxrss is in KiB on Linux.
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mib": torch.cuda.max_memory_allocated() / 2**20
        if torch.cuda.is_available()
        else None,
        "losses": losses,
    }
    args.result_file.write_text(json.dumps(result), encoding="utf-8")


# ---------------------------------------------------------------- driver


def run_variant(variant: str, args: argparse.Namespace, model_path: Path, work_dir: Path) -> dict:
    result_file = work_dir / f"{variant}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        variant,
        "--model-path",
        str(model_path),
        "--examples-file",
        str(work_dir / "examples.json"),
        "--result-file",
        str(result_file),
        "--batch-examples",
        str(args.batch_examples),
        "--max-seq-len",
        str(args.max_seq_len),
        "--row-tokens",
        str(args.row_tokens),
        "--seed",
        str(args.seed),
    ]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    print(f"running {variant} ...", flush=True)
    subprocess.run(command, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return json.loads(result_file.read_text(encoding="utf-8"))


def print_table(results: dict[str, dict]) -> None:
    print(
        "\n| variant | examples | steps | answer tokens | input tokens incl. padding "
        "| padding share | seconds | CPU seconds | answer tokens/s | peak RSS MiB |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, result in results.items():
        print(
            f"| {name} | {result['examples']} | {result['steps']} | {result['answer_tokens']:,} "
            f"| {result['input_tokens']:,} | {result['padding_share']:.1%} "
            f"| {result['seconds']:.1f} | {result['cpu_seconds']:.1f} "
            f"| {result['answer_tokens_per_s']:.1f} "
            f"| {result['peak_rss_mib']:,.0f} |"
        )


def compare(results: dict[str, dict]) -> dict[str, float]:
    """Return each packed variant's speed-ups over padding and the largest loss difference."""
    packed, padded, rows = results["packed"], results["padded"], results["packed-rows"]
    grouped = results["grouped"]
    loss_differences = [
        abs(packed_loss - padded_loss)
        for packed_loss, padded_loss in zip(packed["losses"], padded["losses"], strict=True)
    ]
    return {
        "speedup": packed["answer_tokens_per_s"] / padded["answer_tokens_per_s"],
        "cpu_speedup": padded["cpu_seconds"] / packed["cpu_seconds"],
        "rows_speedup": rows["answer_tokens_per_s"] / padded["answer_tokens_per_s"],
        "rows_cpu_speedup": padded["cpu_seconds"] / rows["cpu_seconds"],
        "grouped_speedup": grouped["answer_tokens_per_s"] / padded["answer_tokens_per_s"],
        "grouped_cpu_speedup": padded["cpu_seconds"] / grouped["cpu_seconds"],
        "max_loss_difference": max(loss_differences),
    }


def print_summary(comparison: dict[str, float], load: dict[str, float], row_tokens: int) -> None:
    print(
        f"\n1-minute load average: {load['load_average_1min_start']:.1f} at start, "
        f"{load['load_average_1min_end']:.1f} at end"
    )
    print(
        f"speed-up of packed over padded: {comparison['speedup']:.2f}x answer tokens/s, "
        f"{comparison['cpu_speedup']:.2f}x in CPU time"
    )
    print(
        f"speed-up of packed-rows ({row_tokens} tokens) over padded: "
        f"{comparison['rows_speedup']:.2f}x answer tokens/s, "
        f"{comparison['rows_cpu_speedup']:.2f}x in CPU time"
    )
    print(
        f"speed-up of length-grouped batches ({row_tokens} tokens) over padded: "
        f"{comparison['grouped_speedup']:.2f}x answer tokens/s, "
        f"{comparison['grouped_cpu_speedup']:.2f}x in CPU time"
    )
    print(
        "largest per-step loss difference between packed and padded: "
        f"{comparison['max_loss_difference']:.2e}"
    )


def find_dataset(args: argparse.Namespace, work_dir: Path) -> Path:
    if args.dataset is not None:
        return args.dataset
    if args.data_dir is not None:
        return build_sgd_dataset(args.data_dir, work_dir)
    raise SystemExit(
        "no examples: give --dataset DIR, or set --data-dir or SUPPORTBOT_DATA_DIR "
        "to the public datasets"
    )


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.worker:
        run_worker(args)
        return

    import torch

    machine = platform.processor() or platform.machine()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    print(f"machine: {machine}, {os.cpu_count()} CPUs, training on {device}")
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as temporary:
        work_dir = Path(temporary)
        dataset_dir = find_dataset(args, work_dir)
        conversations = draw_conversations(dataset_dir, args.examples, args.seed)
        (work_dir / "examples.json").write_text(json.dumps(conversations), encoding="utf-8")
        model_path = resolve_model(args.cache_dir)
        print(
            f"dataset: {dataset_dir}, {args.examples} examples drawn with seed {args.seed}, "
            f"{args.batch_examples} per step, max_seq_len {args.max_seq_len}"
        )
        results = {name: run_variant(name, args, model_path, work_dir) for name in VARIANTS}

    print_table(results)
    comparison = compare(results)
    load = {"load_average_1min_start": load_at_start, "load_average_1min_end": os.getloadavg()[0]}
    print_summary(comparison, load, args.row_tokens)

    if args.json_out is not None:
        report = {
            "command": " ".join(sys.argv),
            "machine": machine,
            "cpus": os.cpu_count(),
            "device": device,
            "model": MODEL,
            "dataset": str(args.dataset) if args.dataset else "SGD dialogues_001, built here",
            "examples": args.examples,
            "batch_examples": args.batch_examples,
            "max_seq_len": args.max_seq_len,
            "row_tokens": args.row_tokens,
            "threads": args.threads,
            "seed": args.seed,
            **comparison,
            **load,
            "variants": results,
        }
        args.json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
