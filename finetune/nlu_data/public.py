"""Read public intent and tagging datasets from a local datasets folder.

``data_dir`` contains one folder per dataset with the file names of the source repository
(see ``DATASETS`` for the folder names and sources). ``supportbot demo`` does not
download these datasets, so each must be copied into its folder by hand.

Splits that a source does not provide are made here, reproducibly from ``seed``:

- ``banking77``: validation is a stratified 10% of the training file.
- ``nlu_plus_plus``: folds 0-15 train, folds 16-17 validation, folds 18-19 test.
- ``smp``: stratified 80/10/10 by ``domain.intent`` after removing repeated texts.

Example:
    >>> splits = read_public_intent_dataset("clinc150", Path("~/supportbot-data").expanduser())
    >>> len(splits.train), len(splits.validation), len(splits.test)
    (15100, 3100, 5500)
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import ijson

from finetune.nlu_data.errors import DataFormatError, DataNotFoundError, iter_text_lines
from finetune.nlu_data.intent_readers import (
    IntentSplits,
    LabelledUtterance,
    read_intent_file,
    split_validation,
    stratified_split,
)
from finetune.nlu_data.tagging_readers import (
    SpanSentenceCollector,
    TaggingSplits,
    read_tagging_file,
    spans_from_values,
)
from nlu.types import OUT_OF_SCOPE, TaggedSentence

logger = logging.getLogger(__name__)

NLUPP_DOMAINS = ("banking", "hotels")
NLUPP_TRAIN_FOLDS = range(0, 16)
NLUPP_VALIDATION_FOLDS = range(16, 18)
NLUPP_TEST_FOLDS = range(18, 20)
SMP_FILES = ("2019train.json", "2020train.json")
SGD_SPLITS = (("train", "train"), ("validation", "dev"), ("test", "test"))
_SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class PublicDataset:
    """Location, language and contents of a public dataset.

    Attributes:
        folder: Folder name under the datasets folder.
        language: Language of its text, ``en`` or ``zh``.
        source: The files to download and the repository that has them.
        has_intents: Whether :func:`read_public_intent_dataset` reads it.
        has_tags: Whether :func:`read_public_tagging_dataset` reads it.
    """

    folder: str
    language: str
    source: str
    has_intents: bool
    has_tags: bool


_FEW_SHOT_REPOSITORY = "github.com/jianguoz/Few-Shot-Intent-Detection"
_POLYAI_REPOSITORY = "github.com/PolyAI-LDN/task-specific-datasets"
_CAIS_SMP_REPOSITORY = "github.com/1053399472/CAISandSMP"
DATASETS = {
    "banking77": PublicDataset(
        "banking77", "en", f"banking_data/train.csv and test.csv from {_POLYAI_REPOSITORY}",
        has_intents=True, has_tags=False,
    ),
    "banking77_oos": PublicDataset(
        "banking77_oos", "en", f"the folder Datasets/BANKING77-OOS of {_FEW_SHOT_REPOSITORY}",
        has_intents=True, has_tags=False,
    ),
    "clinc150": PublicDataset(
        "clinc150_oos", "en", "data/data_full.json from github.com/clinc/oos-eval",
        has_intents=True, has_tags=False,
    ),
    "hwu64": PublicDataset(
        "hwu64", "en", f"the folder Datasets/HWU64 of {_FEW_SHOT_REPOSITORY}",
        has_intents=True, has_tags=False,
    ),
    "snips": PublicDataset(
        "snips", "en", f"the folder Datasets/SNIPS of {_FEW_SHOT_REPOSITORY}",
        has_intents=True, has_tags=True,
    ),
    "atis": PublicDataset(
        "atis", "en", f"the folder Datasets/ATIS of {_FEW_SHOT_REPOSITORY}",
        has_intents=True, has_tags=True,
    ),
    "nlu_plus_plus": PublicDataset(
        "nlu_plus_plus", "en",
        f"the folders nlupp/data/banking and nlupp/data/hotels of {_POLYAI_REPOSITORY}",
        has_intents=True, has_tags=True,
    ),
    "cais": PublicDataset(
        "chinese_nlu_cais", "zh", f"the folder CAIS/source of {_CAIS_SMP_REPOSITORY}",
        has_intents=True, has_tags=True,
    ),
    "smp": PublicDataset(
        "chinese_nlu_smp_ecdt", "zh",
        f"SMP/source/2019train.json and 2020train.json from {_CAIS_SMP_REPOSITORY}",
        has_intents=True, has_tags=True,
    ),
    "sgd": PublicDataset(
        "sgd", "en",
        "train/, dev/ and test/ dialogues_NNN.json files (or gzipped .json.gz copies) from "
        "github.com/google-research-datasets/dstc8-schema-guided-dialogue",
        has_intents=False, has_tags=True,
    ),
}  # fmt: skip


def read_public_intent_dataset(
    name: str,
    data_dir: str | Path,
    *,
    seed: int = 42,
    include_oos_in_train: bool | None = None,
    nlupp_domains: tuple[str, ...] = NLUPP_DOMAINS,
) -> IntentSplits:
    """Read a public intent dataset into train, validation and test utterances.

    Datasets and the contents of each split:

    - ``banking77``: ``train.csv`` minus a stratified 10% for validation; ``test.csv``.
    - ``banking77_oos``: the in-scope ``train``, ``valid`` and ``test`` folders. Validation
      and test also get the ``id-oos`` (held-out banking intents) and ``ood-oos`` (other
      domains) utterances of their split, labelled ``oos``. ``id-oos/train`` joins train
      only with ``include_oos_in_train=True``.
    - ``clinc150``: ``data_full.json``; its ``oos_val`` and ``oos_test`` are added to
      validation and test, and ``oos_train`` to train unless ``include_oos_in_train=False``.
    - ``hwu64``, ``snips``, ``atis``: the ``train``, ``valid`` and ``test`` folders as they
      are (ATIS labels such as ``atis_flight#atis_airfare`` stay one label).
    - ``nlu_plus_plus``: multi-label. Each utterance's label is its label set, written as
      the intents sorted and joined with ``+`` (``booking+change``). A single-label
      classifier therefore treats each combination as one class. Split on ``+`` to get
      the set back.
      Utterances without intents (slot-only replies such as "today") are skipped.
    - ``cais``: the ``train``, ``valid`` and ``test`` character files with their
      ``.intent`` files; the text is the characters joined as in :mod:`tagging_readers`.
    - ``smp``: both files; label ``domain.intent``. A text that appears more than once
      keeps its first label, and the split is stratified 80/10/10.

    Args:
        name: One of the dataset names above.
        data_dir: Folder that contains one folder per dataset.
        seed: Seed of the splits made here (banking77, smp).
        include_oos_in_train: Whether out-of-scope training utterances join train.
            ``None`` keeps each dataset's default: yes for clinc150, no for banking77_oos.
            Has no effect on other datasets.
        nlupp_domains: NLU++ domains to read, ``banking`` and/or ``hotels``.

    Returns:
        The splits, with ``name`` and ``language`` set.

    Raises:
        ValueError: If ``name`` is not a known intent dataset or a domain is unknown.
        DataNotFoundError: If the dataset's folder or one of its files is missing.
        DataFormatError: If a file is malformed, naming the file and, where possible, line.
    """
    folder = _dataset_folder(name, data_dir, intents=True)
    logger.info("Reading public intent dataset name=%s folder=%s", name, folder)

    if name == "banking77":
        train, validation = split_validation(
            read_intent_file(_require(name, folder / "train.csv")), fraction=0.1, seed=seed
        )
        test = read_intent_file(_require(name, folder / "test.csv"))
    elif name == "banking77_oos":
        train, validation, test = _read_banking77_oos(folder, include_oos_in_train is True)
    elif name == "clinc150":
        train, validation, test = _read_clinc150(folder, include_oos_in_train is not False)
    elif name in ("hwu64", "snips", "atis"):
        train, validation, test = (
            read_intent_file(_require(name, folder / split / "seq.in"), fmt="seq")
            for split in ("train", "valid", "test")
        )
    elif name == "nlu_plus_plus":
        train, validation, test = _read_nlupp_intents(folder, nlupp_domains)
    elif name == "cais":
        train, validation, test = (
            _read_cais_intents(folder, split) for split in ("train", "valid", "test")
        )
    else:
        records = _split_smp(_read_smp_records(folder), seed)
        train, validation, test = ([record.utterance for record in part] for part in records)

    splits = IntentSplits(train, validation, test, name, DATASETS[name].language)
    logger.info(
        "Read public intent dataset name=%s train=%d validation=%d test=%d intents=%d",
        name,
        len(train),
        len(validation),
        len(test),
        len({item.intent for _, items in splits.items() for item in items}),
    )
    return splits


def read_public_tagging_dataset(
    name: str,
    data_dir: str | Path,
    *,
    seed: int = 42,
    nlupp_domains: tuple[str, ...] = NLUPP_DOMAINS,
    max_files: int | None = None,
    max_dialogs: int | None = None,
) -> TaggingSplits:
    """Read a public slot-tagging dataset into BIO-tagged train, validation and test sentences.

    Datasets:

    - ``snips``, ``atis``: ``seq.in``/``seq.out`` of ``train``, ``valid`` and ``test``.
    - ``cais``: the character files (BIOES tags) of ``train``, ``valid`` and ``test``.
    - ``nlu_plus_plus``: the slot spans of every utterance, folds split as for intents.
    - ``sgd``: the user turns of ``train``, ``dev`` and ``test`` with the slot spans of
      all their frames. Dialog files are read one at a time as a stream, in name order.
    - ``smp``: slot values have no offsets, so each is looked up in the text (longest
      value first, first occurrence not taken by another value). Values that are not
      found are skipped and counted in a warning. Splits match the intent splits.

    Spans of ``nlu_plus_plus``, ``sgd`` and ``smp`` that end inside a word are widened to
    word boundaries, and overlapping spans are dropped. A warning gives the counts.

    Args:
        name: One of the dataset names above.
        data_dir: Folder that contains one folder per dataset.
        seed: Seed of the smp split.
        nlupp_domains: NLU++ domains to read, ``banking`` and/or ``hotels``.
        max_files: For ``sgd``: read at most this many dialog files per split.
        max_dialogs: For ``sgd``: read at most this many dialogs per split.

    Returns:
        The splits, with ``name`` and ``language`` set.

    Raises:
        ValueError: If ``name`` is not a known tagging dataset, a domain is unknown or a
            limit is below 1.
        DataNotFoundError: If the dataset's folder or one of its files is missing.
        DataFormatError: If a file is malformed, naming the file and, where possible, line.
    """
    for limit_name, limit in (("max_files", max_files), ("max_dialogs", max_dialogs)):
        if limit is not None and limit < 1:
            raise ValueError(f"{limit_name} must be at least 1 or None, got {limit}")
    folder = _dataset_folder(name, data_dir, intents=False)
    logger.info("Reading public tagging dataset name=%s folder=%s", name, folder)

    if name in ("snips", "atis"):
        train, validation, test = (
            read_tagging_file(_require(name, folder / split / "seq.in"), fmt="seq", scheme="bio")
            for split in ("train", "valid", "test")
        )
    elif name == "cais":
        train, validation, test = (
            read_tagging_file(
                _require(name, folder / split / f"ch.{split}"), fmt="chars", scheme="bioes"
            )
            for split in ("train", "valid", "test")
        )
    elif name == "nlu_plus_plus":
        train, validation, test = _read_nlupp_sentences(folder, nlupp_domains)
    elif name == "sgd":
        train, validation, test = (
            _read_sgd_split(folder, split, max_files, max_dialogs) for _, split in SGD_SPLITS
        )
    else:
        train, validation, test = _read_smp_sentences(folder, seed)

    splits = TaggingSplits(train, validation, test, name, DATASETS[name].language)
    logger.info(
        "Read public tagging dataset name=%s train=%d validation=%d test=%d",
        name,
        len(train),
        len(validation),
        len(test),
    )
    return splits


def _dataset_folder(name: str, data_dir: str | Path, *, intents: bool) -> Path:
    kind = "intent" if intents else "tagging"
    known = [
        key
        for key, dataset in DATASETS.items()
        if (dataset.has_intents if intents else dataset.has_tags)
    ]
    if name not in known:
        raise ValueError(f"unknown {kind} dataset {name!r}; known: {', '.join(known)}")
    folder = Path(data_dir).expanduser() / DATASETS[name].folder
    if not folder.is_dir():
        raise DataNotFoundError(folder, _missing_message(name, "the folder does not exist"))
    return folder


def _require(name: str, path: Path) -> Path:
    if not path.exists():
        raise DataNotFoundError(path, _missing_message(name, "the file does not exist"))
    return path


def _missing_message(name: str, problem: str) -> str:
    dataset = DATASETS[name]
    return (
        f"{problem}, so the {name} dataset cannot be read. `supportbot demo` does not "
        f"download it: copy {dataset.source} into the folder {dataset.folder}/ of the "
        "datasets folder (SUPPORTBOT_DATA_DIR)"
    )


def _read_json(name: str, path: Path) -> Any:
    """Load a whole JSON file (the public ones are at most a few MB)."""
    _require(name, path)
    try:
        with path.open(encoding="utf-8-sig") as stream:
            return json.load(stream)
    except json.JSONDecodeError as error:
        raise DataFormatError(path, error.lineno, f"invalid JSON ({error.msg})") from error
    except UnicodeDecodeError as error:
        raise DataFormatError(
            path, None, "the file is not valid UTF-8. Re-save it as UTF-8"
        ) from error


def _json_utterance(path: Path, key: str, text: object, intent: object) -> LabelledUtterance:
    if not (isinstance(text, str) and text.strip() and isinstance(intent, str) and intent.strip()):
        raise DataFormatError(
            path, None, f"item {key} has no text or no intent; expected two non-empty strings"
        )
    return LabelledUtterance(text.strip(), intent.strip(), f"{path}#{key}")


def _read_banking77_oos(
    folder: Path, include_oos_in_train: bool
) -> tuple[list[LabelledUtterance], ...]:
    splits = {}
    for split, folder_name in zip(_SPLITS, ("train", "valid", "test"), strict=True):
        items = read_intent_file(
            _require("banking77_oos", folder / folder_name / "seq.in"),
            fmt="seq",
            skip_empty_text=True,
        )
        for oos_folder in ("id-oos", "ood-oos"):
            if split == "train" and (oos_folder == "ood-oos" or not include_oos_in_train):
                continue
            path = folder / oos_folder / folder_name / "seq.in"
            items.extend(_read_oos_utterances(_require("banking77_oos", path)))
        splits[split] = items
    return splits["train"], splits["validation"], splits["test"]


def _read_oos_utterances(path: Path) -> list[LabelledUtterance]:
    items = read_intent_file(path, fmt="seq", skip_empty_text=True)
    for item in items:
        if item.intent != OUT_OF_SCOPE:
            raise DataFormatError(
                path.parent / "label",
                int(item.source.rsplit(":", 1)[1]),
                f"the label is {item.intent!r}, but every utterance of an out-of-scope folder "
                f"must be labelled {OUT_OF_SCOPE!r}",
            )
    return items


def _read_clinc150(folder: Path, include_oos_in_train: bool) -> tuple[list[LabelledUtterance], ...]:
    path = folder / "data_full.json"
    data = _read_json("clinc150", path)
    parts = []

    for key in ("train", "val", "test"):
        oos_keys = [f"oos_{key}"] if key != "train" or include_oos_in_train else []
        items = []
        for split_key in [key, *oos_keys]:
            pairs = data.get(split_key) if isinstance(data, dict) else None
            if not isinstance(pairs, list):
                raise DataFormatError(path, None, f"the list {split_key!r} is missing")
            for index, pair in enumerate(pairs):
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise DataFormatError(
                        path, None, f"item {split_key}/{index} is not a [text, intent] pair"
                    )
                intent = OUT_OF_SCOPE if split_key.startswith("oos_") else pair[1]
                items.append(_json_utterance(path, f"{split_key}/{index}", pair[0], intent))
        parts.append(items)
    return tuple(parts)


def _iter_nlupp_folds(
    folder: Path, domains: tuple[str, ...], folds: range
) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    """Yield ``(file, index, example)`` of the given domains and folds, domain by domain."""
    unknown = [domain for domain in domains if domain not in NLUPP_DOMAINS]
    if unknown or not domains:
        raise ValueError(
            f"unknown NLU++ domains {unknown or domains!r}; use one or both of: "
            f"{', '.join(NLUPP_DOMAINS)}"
        )
    for domain in domains:
        for fold in folds:
            path = folder / domain / f"fold{fold}.json"
            examples = _read_json("nlu_plus_plus", path)
            if not isinstance(examples, list):
                raise DataFormatError(path, None, "the file is not a JSON list of examples")
            for index, example in enumerate(examples):
                if not isinstance(example, dict) or not isinstance(example.get("text"), str):
                    raise DataFormatError(path, None, f"example {index} has no 'text' string")
                yield path, index, example


def _read_nlupp_intents(
    folder: Path, domains: tuple[str, ...]
) -> tuple[list[LabelledUtterance], ...]:
    parts = []
    skipped = 0
    for folds in (NLUPP_TRAIN_FOLDS, NLUPP_VALIDATION_FOLDS, NLUPP_TEST_FOLDS):
        items = []
        for path, index, example in _iter_nlupp_folds(folder, domains, folds):
            intents = example.get("intents") or []
            if not isinstance(intents, list) or not all(isinstance(i, str) for i in intents):
                raise DataFormatError(
                    path, None, f"example {index}: 'intents' is not a list of strings"
                )
            if not intents:
                skipped += 1
                continue
            label = "+".join(sorted(intents))
            items.append(_json_utterance(path, str(index), example["text"], label))
        parts.append(items)
    logger.info("Skipped NLU++ utterances without intents count=%d", skipped)
    return tuple(parts)


def _read_nlupp_sentences(
    folder: Path, domains: tuple[str, ...]
) -> tuple[list[TaggedSentence], ...]:
    parts = []
    for split, folds in zip(
        _SPLITS, (NLUPP_TRAIN_FOLDS, NLUPP_VALIDATION_FOLDS, NLUPP_TEST_FOLDS), strict=True
    ):
        collector = SpanSentenceCollector(f"nlu_plus_plus/{split}", "en")
        for path, index, example in _iter_nlupp_folds(folder, domains, folds):
            spans = []
            for slot, value in (example.get("slots") or {}).items():
                span = value.get("span") if isinstance(value, dict) else None
                if not (isinstance(span, list) and len(span) == 2):
                    raise DataFormatError(
                        path, None, f"example {index}: slot {slot!r} has no [start, end] span"
                    )
                spans.append((span[0], span[1], slot))
            collector.add(example["text"], spans, f"{path}#{index}")
        parts.append(collector.finish())
    return tuple(parts)


def _read_cais_intents(folder: Path, split: str) -> list[LabelledUtterance]:
    sentences = read_tagging_file(
        _require("cais", folder / split / f"ch.{split}"), fmt="chars", scheme="bioes"
    )
    intent_path = _require("cais", folder / split / f"ch.{split}.intent")
    intents = [(number, line.strip()) for number, line in iter_text_lines(intent_path)]
    while intents and not intents[-1][1]:
        intents.pop()

    if len(intents) != len(sentences):
        raise DataFormatError(
            intent_path,
            None,
            f"the file has {len(intents)} intents but ch.{split} has {len(sentences)} "
            "utterances. Give each utterance one intent line",
        )
    items = []
    for sentence, (number, intent) in zip(sentences, intents, strict=True):
        if not intent:
            raise DataFormatError(intent_path, number, "the intent is empty")
        items.append(LabelledUtterance(sentence.text, intent, sentence.source))
    return items


@dataclass(frozen=True)
class _SmpRecord:
    """One SMP utterance with its labelled intent and its slot values."""

    utterance: LabelledUtterance
    slots: dict[str, Any]


def _read_smp_records(folder: Path) -> list[_SmpRecord]:
    """Read both SMP files, keeping the first record of each text."""
    records: list[_SmpRecord] = []
    label_by_text: dict[str, str] = {}
    repeated = conflicting = 0

    for file_name in SMP_FILES:
        path = folder / file_name
        examples = _read_json("smp", path)
        if not isinstance(examples, list):
            raise DataFormatError(path, None, "the file is not a JSON list of utterances")
        for index, example in enumerate(examples):
            domain = example.get("domain") if isinstance(example, dict) else None
            intent = example.get("intent") if isinstance(example, dict) else None
            if not (isinstance(domain, str) and isinstance(intent, str)):
                raise DataFormatError(path, None, f"item {index} has no domain or intent string")
            utterance = _json_utterance(path, str(index), example.get("text"), f"{domain}.{intent}")
            if utterance.text in label_by_text:
                repeated += 1
                conflicting += label_by_text[utterance.text] != utterance.intent
                continue
            label_by_text[utterance.text] = utterance.intent
            slots = example.get("slots")
            records.append(_SmpRecord(utterance, slots if isinstance(slots, dict) else {}))

    logger.info(
        "Removed repeated SMP texts repeated=%d with_other_label=%d kept=%d",
        repeated,
        conflicting,
        len(records),
    )
    return records


def _split_smp(records: list[_SmpRecord], seed: int) -> tuple[list[_SmpRecord], ...]:
    """Split 80/10/10, stratified by label: test first, then validation from the rest."""
    rest, test = stratified_split(records, fraction=0.1, seed=seed, key=_smp_label)
    train, validation = stratified_split(rest, fraction=1 / 9, seed=seed, key=_smp_label)
    return train, validation, test


def _smp_label(record: _SmpRecord) -> str:
    return record.utterance.intent


def _read_smp_sentences(folder: Path, seed: int) -> tuple[list[TaggedSentence], ...]:
    parts = []
    for split, records in zip(_SPLITS, _split_smp(_read_smp_records(folder), seed), strict=True):
        collector = SpanSentenceCollector(f"smp/{split}", "zh")
        values = not_located = 0
        for record in records:
            spans, missing = spans_from_values(record.utterance.text, record.slots)
            values += len(spans) + missing
            not_located += missing
            collector.add(record.utterance.text, spans, record.utterance.source)
        if not_located:
            logger.warning(
                "Skipped SMP slot values not found in their text, or found only inside "
                "another value, split=%s skipped=%d of values=%d",
                split,
                not_located,
                values,
            )
        parts.append(collector.finish())
    return tuple(parts)


def _read_sgd_split(
    folder: Path, split: str, max_files: int | None, max_dialogs: int | None
) -> list[TaggedSentence]:
    split_folder = folder / split
    files = sorted(
        path
        for path in (split_folder.iterdir() if split_folder.is_dir() else [])
        if path.name.startswith("dialogues_") and path.name.endswith((".json", ".json.gz"))
    )
    if not files:
        raise DataNotFoundError(
            split_folder, _missing_message("sgd", "no dialogues_NNN.json files")
        )
    files = files[:max_files] if max_files is not None else files
    collector = SpanSentenceCollector(f"sgd/{split}", "en")
    dialogs = _iter_sgd_dialogs(files)
    files_read: set[Path] = set()
    dialog_count = 0

    for path, dialog in islice(dialogs, max_dialogs):
        files_read.add(path)
        dialog_count += 1
        for source, text, spans in _iter_sgd_user_turns(path, dialog):
            collector.add(text, spans, source)
    dialogs.close()

    logger.info("Read SGD split split=%s files=%d dialogs=%d", split, len(files_read), dialog_count)
    return collector.finish()


def _iter_sgd_dialogs(files: list[Path]) -> Iterator[tuple[Path, Any]]:
    """Yield ``(file, dialog)`` from each file in turn, parsing one dialog at a time."""
    for path in files:
        opener = gzip.open if path.name.endswith(".gz") else open
        logger.debug("Reading SGD file path=%s", path)
        with opener(path, "rb") as stream:
            try:
                yield from ((path, dialog) for dialog in ijson.items(stream, "item"))
            except (ijson.JSONError, OSError, EOFError) as error:
                raise DataFormatError(path, None, f"invalid JSON or gzip data ({error})") from error


def _iter_sgd_user_turns(
    path: Path, dialog: Any
) -> Iterator[tuple[str, str, list[tuple[int, int, str]]]]:
    """Yield ``(source, utterance, slot spans)`` of each user turn of one dialog."""
    dialog_id = dialog.get("dialogue_id") if isinstance(dialog, dict) else None
    turns = dialog.get("turns") if isinstance(dialog, dict) else None
    if not isinstance(dialog_id, str) or not isinstance(turns, list):
        raise DataFormatError(
            path, None, "a dialog is not an object with a 'dialogue_id' and a list of 'turns'"
        )

    for turn_index, turn in enumerate(turns):
        source = f"{path}#{dialog_id}/{turn_index}"
        if not isinstance(turn, dict) or not isinstance(turn.get("utterance"), str):
            raise DataFormatError(path, None, f"{source}: the turn has no 'utterance' string")
        if turn.get("speaker") != "USER":
            continue
        try:
            spans = [
                (slot["start"], slot["exclusive_end"], slot["slot"])
                for frame in turn["frames"]
                for slot in frame["slots"]
            ]
        except (KeyError, TypeError) as error:
            raise DataFormatError(
                path,
                None,
                f"{source}: a frame or slot lacks {error}; expected frames[].slots[] with "
                "start, exclusive_end and slot",
            ) from error
        yield source, turn["utterance"], spans
