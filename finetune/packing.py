"""Batch tokenized examples: padding-free packing, and right padding as a baseline.

Packing concatenates examples into rows of at most ``max_tokens`` with
``position_ids`` restarting at 0 for every example, the format that transformers'
``DataCollatorWithFlattening`` produces. No compute is spent on padding tokens.

How examples stay separate: transformers 5.23.0 (``masking_utils.
find_packed_sequence_indices``) reads every restart of ``position_ids`` as the start
of a new sequence when there is no 2D ``attention_mask`` and no KV cache. It then
builds a block-diagonal causal mask for the eager and sdpa attention
implementations. It
skips that detection when a cache exists, and Llama models create a
``DynamicCache`` whenever ``use_cache`` is true, the config default, even in
training mode. Tokens would then attend across examples with no error, so
``PackedBatch.model_inputs`` always passes ``use_cache=False``. The test suite
checks on a config-built Llama that packed and single-example logits match.

Example:
    >>> batches = pack_examples(result.examples, max_tokens=4096)
    >>> loss = model(**batches[0].model_inputs()).loss
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from finetune.tokenization import IGNORE_INDEX, TokenizedExample

logger = logging.getLogger(__name__)


@dataclass
class PackedBatch:
    """One row of packed examples; every tensor has shape (1, total tokens).

    Attributes:
        input_ids: Token ids of the examples, one after another.
        labels: Labels of the examples. The first token of each example is -100, so
            the last token of the previous example is not trained to predict it.
        position_ids: Positions that restart at 0 at the first token of each example.
        seq_lengths: Tokens of each example, in row order.
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor
    seq_lengths: list[int]

    def model_inputs(self) -> dict[str, Any]:
        """Return keyword arguments for a causal LM's forward pass, with the cache off."""
        return {
            "input_ids": self.input_ids,
            "labels": self.labels,
            "position_ids": self.position_ids,
            # A KV cache disables packed-sequence detection, see the module docstring.
            "use_cache": False,
        }


@dataclass
class PaddedBatch:
    """Right-padded examples; every tensor has shape (examples, longest example).

    Attributes:
        input_ids: Token ids, with the pad token after each example.
        labels: Labels, -100 on padding.
        attention_mask: 1 on example tokens, 0 on padding.
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor

    def model_inputs(self) -> dict[str, Any]:
        """Return keyword arguments for a causal LM's forward pass."""
        return {
            "input_ids": self.input_ids,
            "labels": self.labels,
            "attention_mask": self.attention_mask,
            "use_cache": False,
        }


def pack_examples(examples: Sequence[TokenizedExample], *, max_tokens: int) -> list[PackedBatch]:
    """Pack examples in their given order into rows of at most ``max_tokens`` tokens.

    A row is closed when the next example does not fit (next-fit). This keeps the
    caller's shuffle order, so long examples are not grouped into the same steps,
    at the cost of some unused room per row compared with first-fit-decreasing.

    Args:
        examples: Tokenized examples, each at most ``max_tokens`` long.
        max_tokens: Maximum tokens per row, greater than 0.

    Returns:
        The rows; each example appears in exactly one row, whole.

    Raises:
        ValueError: If ``max_tokens`` is not positive or an example is empty or
            longer than ``max_tokens``.
    """
    if max_tokens <= 0:
        raise ValueError(f"invalid max_tokens {max_tokens}: use a value greater than 0")
    for index, example in enumerate(examples):
        if not 0 < len(example.input_ids) <= max_tokens:
            raise ValueError(
                f"example {index} has {len(example.input_ids)} tokens, outside 1..{max_tokens}: "
                "tokenize with max_seq_len <= max_tokens and drop empty examples"
            )

    rows: list[list[TokenizedExample]] = []
    row_tokens = 0
    for example in examples:
        if not rows or row_tokens + len(example.input_ids) > max_tokens:
            rows.append([])
            row_tokens = 0
        rows[-1].append(example)
        row_tokens += len(example.input_ids)

    batches = [_build_packed_batch(row) for row in rows]
    total = sum(len(example.input_ids) for example in examples)
    logger.info(
        "packed %d examples into %d rows, %.1f%% of %d token slots used",
        len(examples),
        len(batches),
        100.0 * total / max(1, len(batches) * max_tokens),
        len(batches) * max_tokens,
    )
    return batches


def collate_padded(examples: Sequence[TokenizedExample], *, pad_token_id: int) -> PaddedBatch:
    """Right-pad examples to the longest one, the baseline that packing replaces.

    Args:
        examples: At least one tokenized example.
        pad_token_id: Token id written on padding; its logits are masked out by
            ``attention_mask`` and its labels are -100.

    Returns:
        The padded batch.

    Raises:
        ValueError: If ``examples`` is empty.
    """
    if not examples:
        raise ValueError("collate_padded needs at least one example, got none")

    width = max(len(example.input_ids) for example in examples)
    shape = (len(examples), width)
    input_ids = torch.full(shape, pad_token_id, dtype=torch.long)
    labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros(shape, dtype=torch.long)
    for row, example in enumerate(examples):
        length = len(example.input_ids)
        input_ids[row, :length] = torch.tensor(example.input_ids)
        labels[row, :length] = torch.tensor(example.labels)
        attention_mask[row, :length] = 1
    return PaddedBatch(input_ids, labels, attention_mask)


def group_by_length(
    examples: Sequence[TokenizedExample], *, max_tokens: int, pad_token_id: int, seed: int
) -> list[PaddedBatch]:
    """Batch examples of similar length, each batch padded and at most ``max_tokens`` tokens.

    Examples are sorted by length and cut into batches whose padded size (examples x
    longest example) stays within ``max_tokens``, so padding is small and attention
    runs within each example. The batch order is shuffled with ``seed``, so a run does
    not see the short examples first.

    Raises:
        ValueError: If an example is longer than ``max_tokens``.
    """
    order = sorted(range(len(examples)), key=lambda index: (len(examples[index].input_ids), index))
    groups: list[list[TokenizedExample]] = []
    current: list[TokenizedExample] = []
    for index in order:
        length = len(examples[index].input_ids)
        if length > max_tokens:
            raise ValueError(
                f"example {index} has {length} tokens, more than max_tokens {max_tokens}: "
                "raise max_tokens or lower max_seq_len"
            )
        # Sorted ascending, so the new example is the longest of its batch.
        if current and length * (len(current) + 1) > max_tokens:
            groups.append(current)
            current = []
        current.append(examples[index])
    if current:
        groups.append(current)

    random.Random(seed).shuffle(groups)
    return [collate_padded(group, pad_token_id=pad_token_id) for group in groups]


def _build_packed_batch(row: Sequence[TokenizedExample]) -> PackedBatch:
    input_ids: list[int] = []
    labels: list[int] = []
    position_ids: list[int] = []
    for example in row:
        input_ids += example.input_ids
        labels += [IGNORE_INDEX] + example.labels[1:]
        position_ids += range(len(example.input_ids))
    return PackedBatch(
        input_ids=torch.tensor([input_ids]),
        labels=torch.tensor([labels]),
        position_ids=torch.tensor([position_ids]),
        seq_lengths=[len(example.input_ids) for example in row],
    )
