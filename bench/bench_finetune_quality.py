"""Benchmark answer quality: the packaged SmolLM2 before and after fine-tuning on demo pairs.

Run from the repository root, on a dataset written by ``supportbot finetune dataset``
from the demo conversations (``supportbot demo --no-serve`` imports them):

    supportbot finetune dataset --out /tmp/demo-dataset
    python bench/bench_finetune_quality.py --dataset /tmp/demo-dataset --out /tmp/quality-run

It samples ``--train-pairs`` training pairs and ``--test-pairs`` held-out test pairs with
a fixed seed, fine-tunes with the same pipeline as ``supportbot finetune run`` (LoRA,
packed rows, answer-only loss) and compares base and fine-tuned model on the test pairs:
perplexity, ROUGE-L, token F1 and embedding similarity. The full report, with the ten
questions where the two models differ most, is written to ``<out>/eval_report.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import resource
import tempfile
import time
from pathlib import Path

import torch

from bot.generation.model_cache import resolve_model_path
from finetune.config import TrainingConfig
from finetune.pipeline import Baseline, PipelineOptions, run_finetune
from retrieval.embedder import SentenceTransformerEmbedder
from storage.db import create_db_engine, create_session_factory, upgrade_schema

logger = logging.getLogger(__name__)

MODEL = "packaged:SmolLM2-135M-Instruct"
SPLITS = ("train", "validation", "test")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="Dataset folder to sample.")
    parser.add_argument("--out", type=Path, required=True, help="Run folder; must not exist.")
    parser.add_argument(
        "--model-cache", type=Path, default=Path.home() / ".cache" / "supportbot-bench-models",
        help="Folder for the converted packaged model.",
    )
    parser.add_argument("--train-pairs", type=int, default=300, help="Training pairs sampled.")
    parser.add_argument(
        "--validation-pairs", type=int, default=40, help="Validation pairs sampled."
    )
    parser.add_argument("--test-pairs", type=int, default=60, help="Test pairs compared.")
    parser.add_argument("--epochs", type=float, default=2.0, help="Passes over the sample.")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Peak learning rate.")
    parser.add_argument("--max-seq-len", type=int, default=384, help="Longest example, tokens.")
    parser.add_argument("--batch-tokens", type=int, default=1536, help="Tokens per packed row.")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="Answer length in eval.")
    parser.add_argument("--seed", type=int, default=42, help="Seed of sampling and training.")
    parser.add_argument("--json-out", type=Path, default=None, help="Also write figures here.")
    return parser.parse_args()


def sample_dataset(source: Path, target: Path, sizes: dict[str, int], seed: int) -> dict[str, int]:
    """Copy a seeded random sample of each split of ``source`` into ``target``."""
    target.mkdir(parents=True)
    counts = {}
    for split in SPLITS:
        lines = [
            line for line in (source / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        random.Random(seed).shuffle(lines)
        kept = lines[: sizes[split]]
        (target / f"{split}.jsonl").write_text("\n".join(kept) + "\n", encoding="utf-8")
        counts[split] = len(kept)
    stats = json.loads((source / "stats.json").read_text(encoding="utf-8"))
    stats["sampled_pairs"] = counts
    (target / "stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    return counts


def main() -> None:
    args = parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.out.exists():
        raise SystemExit(f"--out {args.out} exists: give a new folder")

    sizes = {
        "train": args.train_pairs,
        "validation": args.validation_pairs,
        "test": args.test_pairs,
    }
    dataset_dir = args.out.with_name(args.out.name + "-data")
    counts = sample_dataset(args.dataset, dataset_dir, sizes, args.seed)
    model_path = resolve_model_path(MODEL, args.model_cache)

    with tempfile.TemporaryDirectory() as registry_dir:
        engine = create_db_engine(f"sqlite:///{Path(registry_dir) / 'registry.db'}")
        upgrade_schema(engine)
        config = TrainingConfig(
            model=MODEL,
            dataset_dir=dataset_dir,
            output_dir=args.out,
            learning_rate=args.learning_rate,
            num_epochs=args.epochs,
            max_seq_len=args.max_seq_len,
            per_device_batch_tokens=args.batch_tokens,
            gradient_accumulation_steps=1,
            eval_every_steps=0,
            seed=args.seed,
        )
        started = time.perf_counter()
        outcome = run_finetune(
            create_session_factory(engine),
            config,
            version="bench-quality",
            model_path=model_path,
            baseline=Baseline("base", model_path),
            embedder=SentenceTransformerEmbedder("packaged:all-MiniLM-L6-v2"),
            options=PipelineOptions(
                min_train_pairs=1,
                eval_limit=args.test_pairs,
                max_new_tokens=args.max_new_tokens,
                activate=False,
            ),
        )
        seconds = time.perf_counter() - started
        engine.dispose()

    report = json.loads(outcome.report.json.read_text(encoding="utf-8"))
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "pairs": counts,
        "steps": outcome.training.steps,
        "train_seconds": round(outcome.training.train_seconds, 1),
        "answer_tokens_per_s": round(outcome.training.answer_tokens_per_s, 1),
        "total_seconds": round(seconds, 1),
        "peak_rss_mib": round(peak_rss_mib),
        "decision": outcome.decision.reason,
        "report": str(outcome.report.markdown),
        "metrics": report.get("metrics", report),
    }
    print(json.dumps(figures, indent=2, ensure_ascii=False))  # noqa: T201 - benchmark output
    if args.json_out:
        text = json.dumps(figures, indent=2, ensure_ascii=False)
        args.json_out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
