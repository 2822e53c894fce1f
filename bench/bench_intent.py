"""Intent classification on the public data sets: accuracy, out-of-scope, training time, latency.

Trains one classifier with the training code of `supportbot finetune intent --dataset NAME`:
validation split, temperature, ensemble weight and threshold. Then it scores the data set's
test split. Last, it classifies test utterances one at a time, as a server does on each turn,
and reports p50/p95 milliseconds.

Usage:
    SUPPORTBOT_DATA_DIR=/path/to/data python bench/bench_intent.py --dataset banking77 \
        --backend ensemble --out /tmp/bench-intent-banking77
    python bench/bench_intent.py --dataset clinc150 --backend ensemble --out ...
    python bench/bench_intent.py --dataset cais --backend charngram --out ...
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from finetune.intent.encoder_training import EncoderOptions  # noqa: E402
from finetune.intent.training import IntentTrainingOptions, train_intent_classifier  # noqa: E402
from finetune.nlu_data.public import read_public_intent_dataset  # noqa: E402

LATENCY_TURNS = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cais", help="public intent data set (cais)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--epochs", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps default")
    parser.add_argument("--out", type=Path, help="run folder; default a temporary folder")
    arguments = parser.parse_args()
    if arguments.out is None:
        arguments.out = Path(tempfile.mkdtemp(prefix=f"bench-intent-{arguments.dataset}-"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if arguments.threads:
        torch.set_num_threads(arguments.threads)

    data_dir = Path(os.environ["SUPPORTBOT_DATA_DIR"])
    splits = read_public_intent_dataset(arguments.dataset, data_dir)
    options = IntentTrainingOptions(
        backend=arguments.backend, encoder=EncoderOptions(epochs=arguments.epochs)
    )
    started = time.perf_counter()
    result = train_intent_classifier(
        splits.train, splits.validation, splits.test, arguments.out, options
    )
    total_seconds = time.perf_counter() - started

    classifier = result.classifier
    latencies = []
    for item in splits.test[:LATENCY_TURNS]:
        turn_started = time.perf_counter()
        classifier.classify(item.text)
        latencies.append((time.perf_counter() - turn_started) * 1000)

    report = result.report
    test = report["test"]
    figures = {
        "dataset": arguments.dataset,
        "backend": report["backend"],
        "ensemble": report.get("ensemble"),
        "train": report["data"]["train"],
        "test": report["data"]["test"],
        "torch_threads": torch.get_num_threads(),
        "accuracy": test["accuracy"],
        "closed_set_accuracy": test.get("closed_set_accuracy"),
        "macro_f1": test["macro_f1"],
        "in_scope_accuracy": test.get("in_scope_accuracy"),
        "oos_recall": test.get("oos_recall"),
        "threshold": report["threshold"],
        "training_seconds": report["training_seconds"],
        "total_seconds": round(total_seconds, 1),
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 2),
        "latency_ms_p95": round(float(np.percentile(latencies, 95)), 2),
    }
    (arguments.out / "bench.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
