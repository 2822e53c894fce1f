"""Latency of understanding one customer turn: intent, entity tagger and rules together.

Registers the given intent and entity model folders as versions in a temporary SQLite
registry and activates them for their language. Then it runs the serving code
(`bot.understanding.Understander`) on test utterances one at a time, as the dialog manager
does on each turn, and prints p50/p95/max milliseconds per turn.

Without --intent and --ner, it first trains a character n-gram intent model and a CRF
entity tagger on CAIS (about a minute) and times Chinese turns.

Usage:
    python bench/bench_nlu_turn.py
    python bench/bench_nlu_turn.py --intent /tmp/bench-intent-banking77/model \
        --ner /tmp/ner/snips/model --language en --dataset banking77 --turns 500
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bot.config import NluSettings  # noqa: E402
from bot.runtime import build_nlu_models  # noqa: E402
from bot.understanding import Understander  # noqa: E402
from finetune.intent.training import IntentTrainingOptions, train_intent_classifier  # noqa: E402
from finetune.ner.train import train_tagger  # noqa: E402
from finetune.nlu_data.public import (  # noqa: E402
    read_public_intent_dataset,
    read_public_tagging_dataset,
)
from storage import model_registry  # noqa: E402
from storage.db import create_db_engine, create_session_factory, upgrade_schema  # noqa: E402
from storage.models import ModelKind, ModelStatus  # noqa: E402


def _register(session_factory, kind: ModelKind, folder: Path, language: str) -> None:
    name = f"bench-{kind.value}-{language}"
    with session_factory.begin() as session:
        model_registry.register_version(
            session, kind=kind, version=name, base_model="bench", language=language
        )
        model_registry.finish_version(session, name, status=ModelStatus.READY, path=str(folder))
        model_registry.activate_version(session, name, reason="bench")


def _train_cais_models(data_dir: Path, folder: Path) -> tuple[Path, Path]:
    intents = read_public_intent_dataset("cais", data_dir)
    train_intent_classifier(
        intents.train,
        intents.validation,
        [],
        folder / "intent",
        IntentTrainingOptions(backend="charngram", language="zh-CN"),
    )
    tags = read_public_tagging_dataset("cais", data_dir)
    train_tagger(tags.train, tags.validation, folder / "ner", "crf", language="zh-CN")
    return folder / "intent" / "model", folder / "ner"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intent", type=Path)
    parser.add_argument("--ner", type=Path)
    parser.add_argument("--language", default="zh-CN")
    parser.add_argument("--dataset", default="cais", help="public intent data set of the turns")
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)

    data_dir = Path(os.environ["SUPPORTBOT_DATA_DIR"])
    splits = read_public_intent_dataset(arguments.dataset, data_dir)
    texts = [item.text for item in splits.test[: arguments.turns]]
    with tempfile.TemporaryDirectory() as scratch:
        if arguments.intent is None and arguments.ner is None:
            arguments.intent, arguments.ner = _train_cais_models(data_dir, Path(scratch))
        engine = create_db_engine(f"sqlite:///{scratch}/bench.db")
        upgrade_schema(engine)
        session_factory = create_session_factory(engine)
        if arguments.intent:
            _register(session_factory, ModelKind.INTENT, arguments.intent, arguments.language)
        if arguments.ner:
            _register(session_factory, ModelKind.NER, arguments.ner, arguments.language)
        understander = Understander(build_nlu_models(session_factory), NluSettings())

        understander.understand(texts[0], arguments.language)  # load lazily built parts
        latencies = []
        entities = 0
        for text in texts:
            started = time.perf_counter()
            result = understander.understand(text, arguments.language)
            latencies.append((time.perf_counter() - started) * 1000)
            entities += len(result.entities)
        engine.dispose()

    figures = {
        "dataset": arguments.dataset,
        "language": arguments.language,
        "intent_model": str(arguments.intent),
        "ner_model": str(arguments.ner),
        "turns": len(texts),
        "entities_found": entities,
        "torch_threads": arguments.threads,
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 2),
        "latency_ms_p95": round(float(np.percentile(latencies, 95)), 2),
        "latency_ms_max": round(float(np.max(latencies)), 2),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
