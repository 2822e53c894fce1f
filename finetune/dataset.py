"""Write training pairs as chat-format JSONL files for supervised fine-tuning.

Each line is ``{"messages": [...]}`` with "system", "user" and "assistant" roles,
the conversational format that transformers chat templates and TRL's SFTTrainer read.

Example:
    >>> stats = write_dataset(splits, Path("data/sft"), system_prompt="You are ...")
    >>> stats.pairs
    {'train': 1460, 'validation': 190, 'test': 180}
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from finetune.pairs import TrainingPair
from finetune.splits import DatasetSplits

logger = logging.getLogger(__name__)

STATS_FILE = "stats.json"
_CHAT_ROLES = {"customer": "user", "agent": "assistant"}


class Tokenizer(Protocol):
    """The part of a transformers tokenizer that token counting uses."""

    chat_template: str | None

    def __call__(self, text: str, *, add_special_tokens: bool = ...) -> Mapping[str, Any]:
        """Return a mapping with "input_ids"."""
        ...

    def apply_chat_template(self, conversation: list[dict[str, str]], **kwargs: Any) -> Any:
        """Return the tokenised conversation."""
        ...


@dataclass
class DatasetStats:
    """Contents of stats.json.

    Attributes:
        pairs: Pairs per split.
        conversations: Distinct conversations per split.
        characters: Characters of all message contents per split, system prompt included.
        tokens: Tokens per split when a tokenizer was given, else None. With a chat
            template the count covers the rendered conversation, else the contents only.
        dropped: Messages or turns dropped while building pairs, per reason.
        duplicates_removed: Pairs removed as near-duplicate questions.
        redactions: Personal-data spans replaced by placeholders, per kind.
    """

    pairs: dict[str, int] = field(default_factory=dict)
    conversations: dict[str, int] = field(default_factory=dict)
    characters: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, int] | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    duplicates_removed: int = 0
    redactions: dict[str, int] = field(default_factory=dict)


def write_dataset(
    splits: DatasetSplits,
    out_dir: Path,
    *,
    system_prompt: str,
    tokenizer: Tokenizer | None = None,
    drop_counts: Mapping[str, int] | None = None,
    duplicates_removed: int = 0,
    redactions: Mapping[str, int] | None = None,
) -> DatasetStats:
    """Write train.jsonl, validation.jsonl, test.jsonl and stats.json into ``out_dir``.

    Context turns become earlier user and assistant messages and the answer the last
    assistant message. Each file is written to a temporary file in ``out_dir`` and
    renamed, so a reader never sees a partial file. The files are UTF-8 with
    non-ASCII text such as Chinese written as is.

    Args:
        splits: Pairs per split; an empty split gives an empty file.
        out_dir: Output folder, created if missing. Existing files of these names are
            replaced.
        system_prompt: Content of the first, "system" message of every example; an
            empty string leaves the system message out.
        tokenizer: A transformers tokenizer for the token counts in the stats; None
            skips counting, which is much faster.
        drop_counts: Drop reasons from pair building, copied into the stats.
        duplicates_removed: Near-duplicate pairs removed, copied into the stats.
        redactions: Redacted spans per kind, copied into the stats.

    Returns:
        The statistics that were written to stats.json.

    Raises:
        OSError: If the folder or a file cannot be written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = DatasetStats(
        tokens={} if tokenizer is not None else None,
        dropped=dict(drop_counts or {}),
        duplicates_removed=duplicates_removed,
        redactions=dict(redactions or {}),
    )

    for name, pairs in splits.items():
        counts: Counter[str] = Counter()
        lines = _render_lines(
            pairs, system_prompt=system_prompt, tokenizer=tokenizer, counts=counts
        )
        _write_atomic(out_dir / f"{name}.jsonl", lines)
        stats.pairs[name] = len(pairs)
        stats.conversations[name] = len({pair.external_id for pair in pairs})
        stats.characters[name] = counts["characters"]
        if stats.tokens is not None:
            stats.tokens[name] = counts["tokens"]

    stats_text = json.dumps(asdict(stats), indent=2, ensure_ascii=False) + "\n"
    _write_atomic(out_dir / STATS_FILE, [stats_text])
    logger.info("Wrote dataset out_dir=%s pairs=%s", out_dir, stats.pairs)
    return stats


def to_chat_messages(pair: TrainingPair, *, system_prompt: str) -> list[dict[str, str]]:
    """Return the pair as a list of {"role", "content"} messages ending with the answer.

    A context that starts with an agent turn loses that turn, so that the messages after
    the system prompt start with "user" and alternate, which strict chat templates
    (such as Mistral's) require.
    """
    context = list(pair.context)
    if context and context[0][0] != "customer":
        context = context[1:]

    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.extend({"role": _chat_role(role), "content": text} for role, text in context)
    messages.append({"role": "user", "content": pair.question})
    messages.append({"role": "assistant", "content": pair.answer})
    return messages


def _chat_role(role: str) -> str:
    try:
        return _CHAT_ROLES[role]
    except KeyError:
        raise ValueError(
            f"context role {role!r} has no chat role; expected one of {sorted(_CHAT_ROLES)}"
        ) from None


def _render_lines(
    pairs: Iterable[TrainingPair],
    *,
    system_prompt: str,
    tokenizer: Tokenizer | None,
    counts: Counter[str],
) -> Iterator[str]:
    """Yield one JSON line per pair and add its characters and tokens to ``counts``."""
    for pair in pairs:
        messages = to_chat_messages(pair, system_prompt=system_prompt)
        counts["characters"] += sum(len(message["content"]) for message in messages)
        if tokenizer is not None:
            counts["tokens"] += _count_tokens(tokenizer, messages)
        yield json.dumps({"messages": messages}, ensure_ascii=False) + "\n"


def _count_tokens(tokenizer: Tokenizer, messages: list[dict[str, str]]) -> int:
    if tokenizer.chat_template:
        encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)
        return len(encoded["input_ids"])
    return sum(
        len(tokenizer(m["content"], add_special_tokens=False)["input_ids"]) for m in messages
    )


def _write_atomic(path: Path, lines: Iterable[str]) -> None:
    """Write ``lines`` to a temporary file beside ``path``, then rename it over ``path``."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as file:
            file.writelines(lines)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
