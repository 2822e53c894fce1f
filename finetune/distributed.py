"""Settings and collectives for training in several processes.

``finetune.trainer.train`` runs unchanged under ``torchrun`` and ``accelerate launch``:
each process trains on its shard of the packed rows, and transformers' Trainer
(through accelerate) wraps the model in DistributedDataParallel or DeepSpeed. The
helpers here cover what the Trainer leaves to the caller: the process-group backend
on machines without CUDA, and token counts summed over all processes.

Example:
    >>> args = TrainingArguments(output_dir="runs/a", **distributed_training_arguments())
    >>> answer_tokens, input_tokens = sum_over_processes(trainer.accelerator, [12, 40])
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import torch
from accelerate import Accelerator

logger = logging.getLogger(__name__)

# The torch.distributed backend for CPU tensors, because NCCL needs CUDA.
CPU_BACKEND = "gloo"


def launched_world_size() -> int:
    """Return the number of processes of this launch, from ``WORLD_SIZE`` (1 if unset).

    torchrun and ``accelerate launch`` set ``WORLD_SIZE`` in every process they start.

    Raises:
        ValueError: If ``WORLD_SIZE`` is set but is not a positive integer.
    """
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        world_size = int(value)
    except ValueError:
        world_size = 0
    if world_size < 1:
        raise ValueError(
            f"invalid WORLD_SIZE {value!r}: expected a positive integer. Start several "
            "processes with torchrun or accelerate launch, which set it"
        )
    return world_size


def distributed_training_arguments() -> dict[str, Any]:
    """Return ``TrainingArguments`` keywords that make a multi-process launch use its processes.

    Without CUDA, accelerate 1.16.0 initialises a process group under torchrun only
    when ``use_cpu`` is set. Otherwise every process trains alone on its shard of the
    data and the processes' weights drift apart. So a launch of more than one
    process on a machine without CUDA gets ``use_cpu=True`` and the gloo backend. A
    single process, or a CUDA machine, gets no keywords, and the Trainer keeps its
    defaults (NCCL on CUDA).
    """
    world_size = launched_world_size()
    if world_size == 1 or torch.cuda.is_available():
        return {}
    logger.info(
        "no CUDA device: %d processes train on the CPU with the %s backend",
        world_size,
        CPU_BACKEND,
    )
    return {"use_cpu": True, "ddp_backend": CPU_BACKEND}


def sum_over_processes(accelerator: Accelerator, values: Sequence[int]) -> list[int]:
    """Sum integer counts element-wise over all processes.

    Every process must call this with the same number of values, because it is a
    collective operation: a process that skips it makes the others wait until the
    process-group timeout. With one process it returns ``values`` unchanged.

    Args:
        accelerator: The accelerator of the run, such as ``Trainer.accelerator``.
        values: This process's counts.

    Returns:
        The sums, in the order of ``values``, the same on every process.
    """
    counts = torch.tensor(list(values), dtype=torch.long, device=accelerator.device)
    return [int(total) for total in accelerator.reduce(counts, reduction="sum").tolist()]
