"""Read labelled utterances for intent classification, check labels and split them.

Formats (every file UTF-8, a byte order mark allowed):

- ``csv``: a header row, then one utterance a row. The text column is the first header
  named one of ``TEXT_COLUMNS`` and the intent column the first named one of
  ``INTENT_COLUMNS`` (names compared case-insensitively). Other columns are ignored.
- ``jsonl``: one ``{"text": ..., "intent": ...}`` object a line; blank lines are skipped.
- ``seq``: a ``seq.in`` file with one utterance a line and a ``label`` file beside it with
  the intent on the same line, as in the SNIPS, ATIS and HWU64 distributions.

Example:
    >>> train = read_intent_file(Path("intents/train.csv"))
    >>> train, validation = split_validation(train, fraction=0.1, seed=42)
    >>> check_intent_labels(train, read_intent_file(Path("intents/test.jsonl")), "test.jsonl")
"""

from __future__ import annotations

import csv
import json
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from finetune.nlu_data.errors import (
    DataFormatError,
    iter_aligned_lines,
    iter_text_lines,
)
from nlu.types import OUT_OF_SCOPE

logger = logging.getLogger(__name__)

TEXT_COLUMNS = ("text", "utterance", "query", "sentence")
INTENT_COLUMNS = ("intent", "label", "category")
INTENT_FORMATS = ("csv", "jsonl", "seq")
_SUFFIX_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_Item = TypeVar("_Item")
# A record as read, before its checks: file, line, text and intent.
_Record = tuple[Path, int, object, object]


@dataclass(frozen=True)
class LabelledUtterance:
    """One training or evaluation utterance with its intent.

    Attributes:
        text: The utterance, without leading and trailing whitespace.
        intent: The intent label; ``oos`` marks an out-of-scope utterance.
        source: Where it came from: ``FILE:LINE`` for line-based files, ``FILE#KEY`` for
            items of a JSON document.
    """

    text: str
    intent: str
    source: str


@dataclass
class IntentSplits:
    """A dataset's utterances per split; ``validation`` and ``test`` may be empty.

    Attributes:
        train: Utterances to train on.
        validation: Utterances for model selection and threshold tuning.
        test: Utterances for the final evaluation.
        name: Dataset name, such as ``banking77``.
        language: Language of the utterances, ``en`` or ``zh``.
    """

    train: list[LabelledUtterance]
    validation: list[LabelledUtterance]
    test: list[LabelledUtterance]
    name: str
    language: str

    def items(self) -> list[tuple[str, list[LabelledUtterance]]]:
        """Return ``(split name, utterances)`` for train, validation and test in that order."""
        return [("train", self.train), ("validation", self.validation), ("test", self.test)]


def read_intent_file(
    path: str | Path, fmt: str = "auto", *, skip_empty_text: bool = False
) -> list[LabelledUtterance]:
    """Read labelled utterances from a CSV, JSONL or ``seq.in``/``label`` file.

    Args:
        path: The file. For ``seq``, the ``seq.in`` file or its folder.
        fmt: ``csv``, ``jsonl``, ``seq`` or ``auto``, which picks ``csv`` for ``.csv``,
            ``jsonl`` for ``.jsonl``/``.ndjson``, and ``seq`` for a folder or ``seq.in``.
        skip_empty_text: Skip an utterance whose text is empty, and log the count as a
            warning, instead of raising. Meant for public files that cannot be fixed.

    Returns:
        The utterances in file order.

    Raises:
        DataNotFoundError: If the file does not exist.
        DataFormatError: If the file is empty, not UTF-8, lacks the text or intent column,
            has a malformed JSON line, or a line with an empty text or intent. The error
            names the file and, where there is one, the line.
        ValueError: If ``fmt`` is not a known format.
    """
    path = Path(path)
    fmt = _resolve_intent_format(path, fmt)
    logger.info("Reading intent file path=%s format=%s", path, fmt)

    if fmt == "csv":
        records = _iter_csv_records(path)
    elif fmt == "jsonl":
        records = _iter_jsonl_records(path)
    else:
        records = _iter_seq_records(path)

    utterances = []
    skipped = 0
    for record_path, line, text, intent in records:
        if skip_empty_text and isinstance(text, str) and not text.strip():
            skipped += 1
            continue
        utterances.append(_make_utterance(record_path, line, text, intent))

    if skipped:
        logger.warning(
            "Skipped utterances with an empty text path=%s skipped=%d; delete those lines "
            "from the file to silence this warning",
            path,
            skipped,
        )

    if not utterances:
        raise DataFormatError(
            path, None, "the file contains no utterances. Add at least one labelled utterance"
        )
    logger.info(
        "Read intent file path=%s utterances=%d intents=%d",
        path,
        len(utterances),
        len({item.intent for item in utterances}),
    )
    return utterances


def _resolve_intent_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        if fmt not in INTENT_FORMATS:
            raise ValueError(
                f"unknown intent file format {fmt!r}; use one of: auto, {', '.join(INTENT_FORMATS)}"
            )
        return fmt
    if path.is_dir() or path.name == "seq.in":
        return "seq"
    suffix = path.suffix.lower()
    if suffix in _SUFFIX_FORMATS:
        return _SUFFIX_FORMATS[suffix]
    raise DataFormatError(
        path,
        None,
        f"cannot tell the format from the suffix {suffix or '(none)'!r}. Name the file "
        ".csv, .jsonl or .ndjson, or pass the format (csv, jsonl, seq)",
    )


def _iter_csv_records(path: Path) -> Iterator[_Record]:
    reader = csv.reader((f"{line}\n" for _, line in iter_text_lines(path)), strict=True)
    header: list[str] | None = None
    text_index = intent_index = 0
    previous_line = 0

    while True:
        try:
            row = next(reader, None)
        except csv.Error as error:
            raise DataFormatError(
                path,
                previous_line + 1,
                f"invalid CSV in the row that starts here ({error}). Close every quoted "
                'field with ", and write a " inside one as ""',
            ) from error
        if row is None:
            return
        row_line, previous_line = previous_line + 1, reader.line_num
        if not any(field.strip() for field in row):
            continue
        if header is None:
            header = [name.strip().lower() for name in row]
            text_index, intent_index = _find_csv_columns(path, row_line, header)
            continue
        if len(row) != len(header):
            raise DataFormatError(
                path,
                row_line,
                f"the row has {len(row)} fields but the header has {len(header)}. "
                "Put text that contains commas in double quotes",
            )
        yield path, row_line, row[text_index], row[intent_index]


def _find_csv_columns(path: Path, line: int, header: list[str]) -> tuple[int, int]:
    found = {}
    for role, accepted in (("text", TEXT_COLUMNS), ("intent", INTENT_COLUMNS)):
        names = [name for name in accepted if name in header]
        if not names:
            raise DataFormatError(
                path,
                line,
                f"the header ({', '.join(header)}) has no {role} column. Name it one of: "
                f"{', '.join(accepted)}",
            )
        found[role] = header.index(names[0])
    logger.debug("CSV columns path=%s text=%s intent=%s", path, *found.values())
    return found["text"], found["intent"]


def _iter_jsonl_records(path: Path) -> Iterator[_Record]:
    for number, line in iter_text_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataFormatError(
                path,
                number,
                f"invalid JSON ({error.msg} at column {error.colno}). Write one JSON object "
                'a line, such as {"text": "where is my card?", "intent": "card_arrival"}',
            ) from error
        if not isinstance(record, dict) or "text" not in record or "intent" not in record:
            raise DataFormatError(
                path,
                number,
                'the line is not an object with "text" and "intent" keys. Write one object '
                'a line, such as {"text": "where is my card?", "intent": "card_arrival"}',
            )
        yield path, number, record["text"], record["intent"]


def _iter_seq_records(path: Path) -> Iterator[_Record]:
    folder = path if path.is_dir() else path.parent
    seq_in, labels = folder / "seq.in", folder / "label"
    for number, text, intent in iter_aligned_lines(seq_in, labels):
        if not text.strip() and not intent.strip():
            continue
        yield seq_in, number, text, intent


def _make_utterance(path: Path, line: int, text: object, intent: object) -> LabelledUtterance:
    for name, value in (("text", text), ("intent", intent)):
        if not isinstance(value, str):
            raise DataFormatError(
                path, line, f"the {name} is a {type(value).__name__}, not a string"
            )
        if not value.strip():
            raise DataFormatError(path, line, f"the {name} is empty. Fill it in or delete the line")
    return LabelledUtterance(text=text.strip(), intent=intent.strip(), source=f"{path}:{line}")


def check_intent_labels(
    train: Sequence[LabelledUtterance],
    eval_items: Sequence[LabelledUtterance],
    eval_path: str | Path,
) -> None:
    """Check that training data has two intents or more and evaluation data no new intent.

    The out-of-scope label ``oos`` may appear in evaluation data even when training data
    has none, because out-of-scope detection can work from a confidence threshold alone.

    Args:
        train: Training utterances.
        eval_items: Validation or test utterances.
        eval_path: The evaluation file, for the error message.

    Raises:
        DataFormatError: If ``train`` is empty or has a single intent (naming the training
            file), or an evaluation intent is missing from ``train`` (naming the line of
            its first utterance and listing up to five such intents).
    """
    train_path = _file_of(train[0].source) if train else "training data"
    train_intents = {item.intent for item in train}
    if len(train_intents) < 2:
        found = f"only the intent {next(iter(train_intents))!r}" if train_intents else "no data"
        raise DataFormatError(
            train_path,
            None,
            f"the training data has {found}; a classifier needs at least two classes. Add "
            f"utterances of other intents, or out-of-scope utterances labelled "
            f"{OUT_OF_SCOPE!r}",
        )

    unknown = [
        item
        for item in eval_items
        if item.intent not in train_intents and item.intent != OUT_OF_SCOPE
    ]
    if unknown:
        counts = Counter(item.intent for item in unknown)
        names = ", ".join(repr(name) for name, _ in counts.most_common(5))
        raise DataFormatError(
            eval_path,
            _line_of(unknown[0].source),
            f"the intent {unknown[0].intent!r} is not in the training data ({len(unknown)} "
            f"evaluation utterances have {len(counts)} unknown intents: {names}). Add "
            "training utterances for them, or relabel them",
        )


def split_validation(
    items: Sequence[LabelledUtterance], *, fraction: float = 0.1, seed: int = 42
) -> tuple[list[LabelledUtterance], list[LabelledUtterance]]:
    """Split off a stratified validation set; see :func:`stratified_split`.

    Returns:
        ``(train, validation)``, each in the order of ``items``.
    """
    return stratified_split(items, fraction=fraction, seed=seed, key=_intent_of)


def stratified_split(
    items: Sequence[_Item],
    *,
    fraction: float,
    seed: int,
    key: Callable[[_Item], str],
) -> tuple[list[_Item], list[_Item]]:
    """Hold out ``fraction`` of ``items`` with each label's share kept, reproducibly.

    The held-out size is ``round(len(items) * fraction)``, shared between labels in
    proportion to their counts (largest remainder first, ties by label name). Every label
    keeps at least one item among the remaining ones, so a label with one item is never
    held out, and the held-out part can come out slightly smaller than requested. The
    same items in the same order with the same seed give the same split.

    Args:
        items: Items to split.
        fraction: Share to hold out, in (0, 1).
        seed: Seed of the shuffle within each label.
        key: Returns an item's label.

    Returns:
        ``(remaining, held_out)``, each in the order of ``items``.

    Raises:
        ValueError: If ``fraction`` is not in (0, 1).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")

    indices_by_label: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        indices_by_label[key(item)].append(index)
    quotas = _allocate_held_out(
        {label: len(indices) for label, indices in indices_by_label.items()},
        round(len(items) * fraction),
    )

    rng = random.Random(seed)
    held_out: set[int] = set()
    for label in sorted(indices_by_label):
        shuffled = list(indices_by_label[label])
        rng.shuffle(shuffled)
        held_out.update(shuffled[: quotas[label]])

    remaining = [item for index, item in enumerate(items) if index not in held_out]
    return remaining, [item for index, item in enumerate(items) if index in held_out]


def _allocate_held_out(counts: dict[str, int], total: int) -> dict[str, int]:
    """Share ``total`` between labels in proportion to ``counts``, leaving one of each."""
    size = sum(counts.values())
    exact = {label: count * total / size for label, count in counts.items()} if size else {}
    quotas = {label: min(int(share), counts[label] - 1) for label, share in exact.items()}
    by_remainder = sorted(exact, key=lambda label: (-(exact[label] - int(exact[label])), label))

    remaining = total - sum(quotas.values())
    for label in by_remainder:
        if remaining <= 0:
            break
        if quotas[label] < counts[label] - 1:
            quotas[label] += 1
            remaining -= 1
    return quotas


def _intent_of(item: LabelledUtterance) -> str:
    return item.intent


def _file_of(source: str) -> str:
    """Return the file part of a ``FILE:LINE`` or ``FILE#KEY`` source."""
    if "#" in source:
        return source.rsplit("#", 1)[0]
    head, _, tail = source.rpartition(":")
    return head if head and tail.isdigit() else source


def _line_of(source: str) -> int | None:
    head, _, tail = source.rpartition(":")
    return int(tail) if head and tail.isdigit() else None
