"""Cross-entropy on answer tokens that computes logits only where an answer token is next.

A causal LM's output layer maps every position to vocabulary logits, and for
SmolLM2-135M (49,152 tokens, hidden size 576) that layer costs about a fifth of the
forward pass and 4 bytes x 49,152 of float32 logits per token. The labels of a
fine-tuning row mask the prompt and the context, so only positions whose next token
belongs to an answer contribute to the loss. Passing those positions as
``logits_to_keep`` makes the model compute logits for them alone; the loss is the same
as the model's own shifted cross-entropy.

Example:
    >>> loss, outputs = answer_only_loss(model, batch, num_items_in_batch=None)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch.nn import functional

from finetune.tokenization import IGNORE_INDEX

logger = logging.getLogger(__name__)


def answer_only_loss(
    model: torch.nn.Module,
    inputs: Mapping[str, Any],
    *,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> tuple[torch.Tensor, Any]:
    """Return the summed answer-token cross-entropy divided by the answer-token count.

    Args:
        model: A causal LM whose forward accepts ``logits_to_keep`` as a 1-D tensor of
            sequence positions, as transformers' Llama-style models do.
        inputs: Model inputs with "labels" of shape (batch, length); -100 marks tokens
            without a loss.
        num_items_in_batch: Answer tokens of the whole accumulated batch, which the
            Trainer passes so that gradient accumulation weighs every token equally.
            None divides by the answer tokens of ``inputs`` alone.

    Returns:
        The loss and the model outputs, whose logits cover the kept positions only.
    """
    labels = inputs["labels"]
    # The logits at position i predict token i + 1.
    next_labels = labels[:, 1:]
    positions = (next_labels != IGNORE_INDEX).any(dim=0).nonzero().squeeze(-1)
    model_inputs = {key: value for key, value in inputs.items() if key != "labels"}
    outputs = model(**model_inputs, logits_to_keep=positions)

    logits = outputs.logits
    targets = next_labels[:, positions]
    total = functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    if num_items_in_batch is None:
        num_items_in_batch = (targets != IGNORE_INDEX).sum()
    # A row without answer tokens has no positions and a total of 0, not NaN.
    return total / max(num_items_in_batch, 1), outputs
