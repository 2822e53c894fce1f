"""Run ``finetune.trainer.train`` in every process of a torchrun launch, for the tests.

Usage:
    python -m torch.distributed.run --nproc_per_node 2 run_train.py CONFIG_JSON MODEL_DIR OUT_DIR

``CONFIG_JSON`` is a ``TrainingConfig`` written with ``to_json``. Each process writes
the result that ``train`` returned to ``OUT_DIR/result-rank<N>.json`` and the folders
that ``PreTrainedModel.save_pretrained`` was called with to ``OUT_DIR/saves-rank<N>.json``,
so the test can check which process saved the model.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

from transformers import PreTrainedModel

from finetune.config import TrainingConfig
from finetune.trainer import train

_original_save_pretrained = PreTrainedModel.save_pretrained
saved_folders: list[str] = []


def _recording_save_pretrained(self, save_directory, *args, **kwargs):
    saved_folders.append(str(save_directory))
    return _original_save_pretrained(self, save_directory, *args, **kwargs)


def main(config_path: Path, model_dir: Path, out_dir: Path) -> None:
    rank = int(os.environ["RANK"])
    logging.basicConfig(level=logging.INFO, format=f"rank {rank} %(name)s: %(message)s")
    PreTrainedModel.save_pretrained = _recording_save_pretrained

    result = train(TrainingConfig.from_json(config_path), model_path=model_dir)

    values = dataclasses.asdict(result)
    values["model_dir"] = str(result.model_dir)
    (out_dir / f"result-rank{rank}.json").write_text(json.dumps(values), encoding="utf-8")
    (out_dir / f"saves-rank{rank}.json").write_text(json.dumps(saved_folders), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
