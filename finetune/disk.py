"""Check that a training run has room on disk for its checkpoints before it starts."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

# Checkpoints kept at once by the trainer (save_total_limit) plus the one being written.
_CHECKPOINTS_ON_DISK = 3
# A full fine-tuning checkpoint contains float32 weights and two AdamW moments.
_FULL_CHECKPOINT_FACTOR = 3.0
# A LoRA checkpoint contains only the adapters and their optimizer state. This share of
# the model size is an estimate meant to cover ranks up to 64 on all linear layers.
_LORA_CHECKPOINT_FACTOR = 0.25


class InsufficientDiskError(OSError):
    """The output folder's file system has less free space than the run needs."""


def model_size_bytes(model_path: Path) -> int:
    """Return the size in bytes of the weight files in a model folder."""
    patterns = ("*.safetensors", "*.bin")
    return sum(path.stat().st_size for pattern in patterns for path in model_path.glob(pattern))


def estimate_run_bytes(model_path: Path, method: str) -> int:
    """Estimate the bytes a run writes: checkpoints plus the merged model."""
    size = max(model_size_bytes(model_path), 1)
    # NOTE: the packaged model's converted folder is float32 already; other folders may
    # hold half-precision weights and need up to twice this estimate.
    factor = _FULL_CHECKPOINT_FACTOR if method == "full" else _LORA_CHECKPOINT_FACTOR
    return int(size * (1 + _CHECKPOINTS_ON_DISK * factor))


def check_free_disk(output_dir: Path, needed_bytes: int) -> None:
    """Raise unless the file system of ``output_dir`` has ``needed_bytes`` free.

    Raises:
        InsufficientDiskError: If there is less free space than needed.
    """
    existing = output_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    logger.info(
        "Disk check %s: %.1f GB free, %.1f GB needed", existing, free / 1e9, needed_bytes / 1e9
    )
    if free < needed_bytes:
        raise InsufficientDiskError(
            f"not enough disk space in {existing} for the checkpoints of this run: "
            f"{free / 1e9:.2f} GB free, about {needed_bytes / 1e9:.2f} GB needed. Free space, "
            "set SUPPORTBOT_HOME to a larger disk, or use --method lora"
        )
