"""Conversion of the public demo datasets into a help-centre knowledge base and dialog slices.

Example:
    >>> corpus = build_demo_corpus(ensure_demo_files(None, cache_dir), home / "demo")
    >>> for dialogs in corpus.dialog_slices:
    ...     import_dialogs(SessionLocal, dialogs.paths, format=dialogs.format, limit=dialogs.limit)
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ui.demo.sources import (
    ABCD_GUIDELINES,
    CROSSWOZ_DATABASES,
    CROSSWOZ_VAL,
    SGD_FILES,
    STACKFAQ,
    DemoFile,
)
from ui.demo.venues import VENUE_FOLDERS, render_venue

logger = logging.getLogger(__name__)

# CrossWOZ val.json.zip contains 500 dialogs.
MAX_CROSSWOZ_DIALOGS = 500
# File name stems are cut to this many characters: 60 CJK characters are 180 bytes in
# UTF-8, below the 255-byte name limit of common file systems.
MAX_STEM_CHARS = 60


@dataclass(frozen=True)
class DialogSlice:
    """Dialog files to import with one ``import_dialogs`` call.

    Attributes:
        paths: Files to import.
        format: Their format, as ``import_dialogs`` takes it.
        limit: Maximum conversations to import from them; None imports all.
        language: Language of the dialogs.
    """

    paths: tuple[Path, ...]
    format: str
    limit: int | None
    language: str


@dataclass(frozen=True)
class DemoCorpus:
    """Files written by :func:`build_demo_corpus` and the dialogs to import.

    Attributes:
        knowledge_dir: Folder of every knowledge-base file below.
        faq_path: StackFAQ threads as FAQ JSONL (``question``, ``answer``, ``title``).
        guideline_paths: ABCD agent guidelines, one Markdown file per flow.
        venue_paths: CrossWOZ attractions, restaurants and hotels, one Chinese Markdown
            file per venue.
        dialog_slices: Dialog files to import, one slice per dataset.
        faq_entries: FAQ entries written.
        guideline_sections: Subflow sections in the guideline files.
        venue_counts: Venue files written per kind (attraction, restaurant, hotel).
    """

    knowledge_dir: Path
    faq_path: Path
    guideline_paths: tuple[Path, ...]
    venue_paths: tuple[Path, ...]
    dialog_slices: tuple[DialogSlice, ...]
    faq_entries: int
    guideline_sections: int
    venue_counts: dict[str, int]


def build_demo_corpus(
    data_dir: Path, out_dir: Path, *, sgd_files: int = 2, crosswoz_dialogs: int = 300
) -> DemoCorpus:
    """Write the demo knowledge base into ``out_dir/knowledge`` and choose the dialogs.

    The knowledge base contains the 125 StackFAQ threads as FAQ entries, the 10 ABCD
    guideline flows with their 55 subflows, and every CrossWOZ attraction (465),
    restaurant (951) and hotel (1,133). The crowd-written StackFAQ paraphrases are left
    out because they are the evaluation queries. Each venue file is a few hundred characters, so
    one chunk. Files are rewritten only when their content changes, and files of earlier
    runs that this run does not produce are deleted, so the folder can be indexed
    incrementally.

    Slice sizes: the default two SGD files hold 256 English dialogs with 4,420 messages
    (2,210 agent turns), and 300 CrossWOZ dialogs hold about 5,000 Chinese messages. With
    the knowledge base that is roughly 3,000 knowledge chunks plus up to about 4,700
    agent answers to embed. On a quiet 2-core CPU the indexer embedded the 2,771
    knowledge chunks in 80 s and the past answers in 17 s (one run of
    `supportbot demo`), and the dialog import itself takes under a second.

    Args:
        data_dir: Datasets folder holding the files of :func:`ui.demo.sources.demo_files`,
            for example the folder :func:`ui.demo.fetch.ensure_demo_files` returns.
        out_dir: Folder to write into; created if needed.
        sgd_files: SGD train files to import, 0 to ``len(SGD_FILES)`` (0 imports none).
        crosswoz_dialogs: CrossWOZ validation dialogs to import, 0 to 500 (0 imports
            none).

    Returns:
        The written paths, their counts and the dialog slices.

    Raises:
        ValueError: If ``sgd_files`` or ``crosswoz_dialogs`` is out of range, or a
            dataset file does not have the expected structure.
        FileNotFoundError: If a needed file is missing from ``data_dir``.
    """
    _validate_sizes(sgd_files, crosswoz_dialogs)
    knowledge_dir = out_dir / "knowledge"

    faq_path, faq_entries = _write_faq(_locate(STACKFAQ, data_dir), knowledge_dir / "faq")
    guideline_paths, guideline_sections = _write_guidelines(
        _locate(ABCD_GUIDELINES, data_dir), knowledge_dir / "guidelines"
    )
    venue_paths, venue_counts = _write_venues(data_dir, knowledge_dir / "venues")
    dialog_slices = _choose_dialogs(data_dir, sgd_files, crosswoz_dialogs)

    logger.info(
        "Built demo corpus faq_entries=%d guideline_files=%d venue_files=%d dialog_slices=%d "
        "out_dir=%s",
        faq_entries,
        len(guideline_paths),
        len(venue_paths),
        len(dialog_slices),
        out_dir,
    )
    return DemoCorpus(
        knowledge_dir=knowledge_dir,
        faq_path=faq_path,
        guideline_paths=guideline_paths,
        venue_paths=venue_paths,
        dialog_slices=dialog_slices,
        faq_entries=faq_entries,
        guideline_sections=guideline_sections,
        venue_counts=venue_counts,
    )


def _validate_sizes(sgd_files: int, crosswoz_dialogs: int) -> None:
    if not 0 <= sgd_files <= len(SGD_FILES):
        raise ValueError(f"sgd_files must be between 0 and {len(SGD_FILES)}, got {sgd_files}")
    if not 0 <= crosswoz_dialogs <= MAX_CROSSWOZ_DIALOGS:
        raise ValueError(
            f"crosswoz_dialogs must be between 0 and {MAX_CROSSWOZ_DIALOGS}, got {crosswoz_dialogs}"
        )


def _locate(file: DemoFile, data_dir: Path) -> Path:
    path = file.find_in(data_dir)
    if path is None:
        raise FileNotFoundError(
            f"demo data file {file.relative_path} not found in {data_dir}: run "
            "ensure_demo_files first, or point SUPPORTBOT_DATA_DIR at a complete copy"
        )
    return path


def _load_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"demo data file {path} is not valid UTF-8 JSON: {error}") from error


def _write_faq(source: Path, folder: Path) -> tuple[Path, int]:
    """Write StackFAQ as FAQ JSONL: question and title are the thread title."""
    data = _load_json(source)
    threads = data.get("root", {}).get("qapair") if isinstance(data, dict) else None
    if not isinstance(threads, list):
        raise ValueError(f"{source}: expected an object with root.qapair, a list of threads")

    lines = []
    for thread in threads:
        answers = thread["answer"] if isinstance(thread["answer"], list) else [thread["answer"]]
        title = thread["question"].strip()
        answer = "\n\n".join(text.strip() for text in answers if text.strip())
        entry = {"question": title, "answer": answer, "title": title}
        lines.append(json.dumps(entry, ensure_ascii=False))

    output = _OutputFolder(folder)
    path = output.write("stackexchange-faq.jsonl", "\n".join(lines) + "\n")
    output.remove_stale()
    return path, len(lines)


def _write_guidelines(source: Path, folder: Path) -> tuple[tuple[Path, ...], int]:
    """Write one Markdown file per ABCD flow with a section per subflow."""
    flows = _load_json(source)
    if not isinstance(flows, dict):
        raise ValueError(f"{source}: expected an object that maps flow names to flows")

    output = _OutputFolder(folder)
    paths = []
    sections = 0
    for flow_name, flow in flows.items():
        name = output.unique_name(flow_name, ".md")
        paths.append(output.write(name, _render_flow(flow_name, flow)))
        sections += len(flow["subflows"])
    output.remove_stale()
    return tuple(paths), sections


def _render_flow(flow_name: str, flow: dict) -> str:
    lines = [f"# {flow_name}", "", f"Covers: {flow['description']}.", ""]
    for subflow_name, subflow in flow["subflows"].items():
        instructions = [text.strip() for text in subflow.get("instructions", [])]
        lines += [f"## {subflow_name}", ""]
        if instructions:
            lines += [instructions[0], ""]
        for number, action in enumerate(subflow.get("actions", []), start=1):
            lines.append(f"{number}. {action['text'].strip()}")
            lines += [f"   - {text.strip()}" for text in action.get("subtext", [])]
        lines.append("")
        for text in instructions[1:]:
            lines += [text, ""]
    return "\n".join(lines).rstrip() + "\n"


def _write_venues(data_dir: Path, folder: Path) -> tuple[tuple[Path, ...], dict[str, int]]:
    """Write one Chinese Markdown file per CrossWOZ attraction, restaurant and hotel."""
    paths: list[Path] = []
    counts: dict[str, int] = {}
    for kind, file in CROSSWOZ_DATABASES.items():
        source = _locate(file, data_dir)
        entries = _load_json(source)
        if not isinstance(entries, list):
            raise ValueError(f"{source}: expected a list of [name, fields] pairs")
        output = _OutputFolder(folder / VENUE_FOLDERS[kind])
        for name, fields in entries:
            file_name = output.unique_name(name, ".md")
            paths.append(output.write(file_name, render_venue(kind, fields)))
        output.remove_stale()
        counts[kind] = len(entries)
    return tuple(paths), counts


def _choose_dialogs(
    data_dir: Path, sgd_files: int, crosswoz_dialogs: int
) -> tuple[DialogSlice, ...]:
    slices = []
    if sgd_files:
        paths = tuple(_locate(file, data_dir) for file in SGD_FILES[:sgd_files])
        slices.append(DialogSlice(paths=paths, format="sgd", limit=None, language="en"))
    if crosswoz_dialogs:
        path = _locate(CROSSWOZ_VAL, data_dir)
        slices.append(
            DialogSlice(paths=(path,), format="crosswoz", limit=crosswoz_dialogs, language="zh-CN")
        )
    return tuple(slices)


class _OutputFolder:
    """Writes files into one folder and then deletes the files of earlier runs it did not write.

    A file is rewritten only when its content changed, through a temporary file and a
    rename, so its modification time stays put and readers never see half a file.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.written: set[str] = set()

    def unique_name(self, title: str, suffix: str) -> str:
        """Return a file name derived from ``title`` that this run has not used yet."""
        stem = re.sub(r"[^\w\-.()（）·]+", "_", title).strip("._")[:MAX_STEM_CHARS] or "untitled"
        name = f"{stem}{suffix}"
        number = 2
        while name in self.written:
            name = f"{stem}-{number}{suffix}"
            number += 1
        return name

    def write(self, name: str, content: str) -> Path:
        path = self.folder / name
        data = content.encode("utf-8")
        self.written.add(name)
        if path.is_file() and path.read_bytes() == data:
            return path
        with tempfile.NamedTemporaryFile(dir=self.folder, prefix=".part-", delete=False) as part:
            part.write(data)
        os.replace(part.name, path)
        return path

    def remove_stale(self) -> None:
        for path in self.folder.iterdir():
            if path.is_file() and not path.name.startswith(".") and path.name not in self.written:
                logger.info("Removing stale demo knowledge file path=%s", path)
                path.unlink()
