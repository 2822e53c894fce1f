"""Read knowledge files: Markdown, plain text, HTML and FAQ tables.

Supported extensions:

- ``.md``/``.markdown``: Markdown, titled by its first ``#`` heading;
- ``.txt``: plain text, titled by the file stem;
- ``.html``/``.htm``: text extracted with BeautifulSoup without scripts, styles and
  ``<nav>`` menus, with ``<h1>``-``<h6>`` turned into Markdown headings, titled by
  ``<title>``;
- ``.csv``: FAQ with a header row naming ``question``, ``answer`` and optionally
  ``title`` columns; other columns are ignored;
- ``.jsonl``: FAQ with one ``{"question": ..., "answer": ..., "title": ...}`` object a
  line, ``title`` optional.

Every file must be UTF-8 (a byte order mark is allowed).

Example:
    >>> documents = load_documents([Path("help-centre/")])
    >>> documents[0].title
    'Resetting your password'
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bs4 import BeautifulSoup

from retrieval.errors import DocumentFormatError, SourceNotFoundError
from retrieval.language import detect_language
from storage.models import DocumentKind

logger = logging.getLogger(__name__)

KIND_BY_EXTENSION = {
    ".md": DocumentKind.MARKDOWN,
    ".markdown": DocumentKind.MARKDOWN,
    ".txt": DocumentKind.TEXT,
    ".html": DocumentKind.HTML,
    ".htm": DocumentKind.HTML,
    ".csv": DocumentKind.FAQ,
    ".jsonl": DocumentKind.FAQ,
}
# ATX headings such as "## Billing"; setext headings (underlined with === or ---) are
# not recognised.
HEADING_PATTERN = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
FENCE_PATTERN = re.compile(r"^ {0,3}(```|~~~)")
_BLOCK_TAGS = (
    "p", "div", "section", "article", "main", "header", "footer", "aside", "li",
    "ul", "ol", "dl", "dt", "dd", "table", "tr", "pre", "blockquote", "br", "hr", "form",
)  # fmt: skip
# Navigation menus repeat on every page and carry nothing about its subject.
_DROPPED_TAGS = ("script", "style", "noscript", "template", "svg", "head", "nav")


@dataclass(frozen=True)
class FaqEntry:
    """One question with its answer from a FAQ file; ``line`` is 1-based."""

    question: str
    answer: str
    title: str | None = None
    line: int = 0


@dataclass
class SourceDocument:
    """A knowledge file as read from disk.

    Attributes:
        source: Resolved absolute path of the file.
        title: First Markdown heading, HTML ``<title>`` or the file stem.
        kind: Format of the file.
        language: "zh-CN" or "en", detected from ``text``.
        text: Readable text. For FAQ files, each question and answer on its own lines.
        checksum: SHA-256 hex digest of the file's bytes.
        faq_entries: The entries of a FAQ file; empty for other kinds.
    """

    source: str
    title: str
    kind: DocumentKind
    language: str
    text: str
    checksum: str
    faq_entries: list[FaqEntry] = field(default_factory=list)


def load_documents(paths: Iterable[Path]) -> list[SourceDocument]:
    """Read files and, recursively, the files inside folders, in sorted order.

    Inside folders, hidden files and folders (names starting with ".") are ignored, and
    empty files and unsupported extensions are skipped with a warning. Files given
    directly must be supported and non-empty.

    Args:
        paths: Files and folders.

    Returns:
        One document per readable file, without duplicates.

    Raises:
        SourceNotFoundError: If a path does not exist.
        DocumentFormatError: If a file is not UTF-8, is malformed, or is given directly
            but is empty or unsupported.
    """
    documents: dict[str, SourceDocument] = {}
    for file_path, is_explicit in iter_source_files(paths):
        if str(file_path) in documents:
            continue
        try:
            documents[str(file_path)] = load_document(file_path)
        except _SkippableFormatError as error:
            if is_explicit:
                raise
            logger.warning("Skipping knowledge file: %s", error)
    return list(documents.values())


def iter_source_files(paths: Iterable[Path]) -> Iterator[tuple[Path, bool]]:
    """Yield each resolved file path, with whether it was given directly.

    Raises:
        SourceNotFoundError: If a path does not exist.
    """
    for path in paths:
        resolved = Path(path).expanduser().resolve()
        if resolved.is_file():
            yield resolved, True
        elif resolved.is_dir():
            for child in sorted(resolved.rglob("*")):
                relative_parts = child.relative_to(resolved).parts
                if child.is_file() and not any(p.startswith(".") for p in relative_parts):
                    yield child, False
        else:
            raise SourceNotFoundError(
                f"knowledge path {str(path)!r} does not exist: check the path or create it"
            )


def load_document(path: Path) -> SourceDocument:
    """Read one knowledge file.

    Returns:
        The document, with ``source`` set to the resolved absolute path.

    Raises:
        DocumentFormatError: If the extension is unsupported, the file is empty or not
            UTF-8, a FAQ row is malformed, or no text remains after HTML extraction. The
            message names the file and, where one applies, the line.
    """
    path = Path(path).expanduser().resolve()
    kind = KIND_BY_EXTENSION.get(path.suffix.lower())
    if kind is None:
        supported = ", ".join(sorted(KIND_BY_EXTENSION))
        raise _SkippableFormatError(
            f"{path}: unsupported extension {path.suffix!r}; supported: {supported}"
        )

    raw = path.read_bytes()
    content = _decode_utf8(path, raw)
    if not content.strip():
        raise _SkippableFormatError(f"{path}: file is empty")

    title, text, entries = _parse_content(path, content, kind)
    if not text.strip():
        raise DocumentFormatError(f"{path}: no text left after removing markup")
    return SourceDocument(
        source=str(path),
        title=title,
        kind=kind,
        language=detect_language(text),
        text=text,
        checksum=hashlib.sha256(raw).hexdigest(),
        faq_entries=entries,
    )


def find_markdown_title(text: str) -> str | None:
    """Return the text of the first ATX heading outside code fences, or None."""
    in_fence = False
    for line in text.splitlines():
        if FENCE_PATTERN.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else HEADING_PATTERN.match(line)
        if match:
            return match.group(2).strip()
    return None


class _SkippableFormatError(DocumentFormatError):
    """An empty or unsupported file, which a folder walk skips instead of failing."""


def _decode_utf8(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DocumentFormatError(
            f"{path}, line {line}: not valid UTF-8 (byte {raw[error.start]:#04x} at offset "
            f"{error.start}); convert the file to UTF-8, for example with iconv"
        ) from error


def _parse_content(path: Path, content: str, kind: DocumentKind) -> tuple[str, str, list[FaqEntry]]:
    if kind == DocumentKind.MARKDOWN:
        return find_markdown_title(content) or path.stem, content, []
    if kind == DocumentKind.HTML:
        title, text = _extract_html(content)
        return title or find_markdown_title(text) or path.stem, text, []
    if kind == DocumentKind.FAQ:
        entries = (
            _parse_csv(path, content)
            if path.suffix.lower() == ".csv"
            else _parse_jsonl(path, content)
        )
        text = "\n\n".join(f"{entry.question}\n{entry.answer}" for entry in entries)
        return path.stem, text, entries
    return path.stem, content, []


def _extract_html(content: str) -> tuple[str | None, str]:
    soup = BeautifulSoup(content, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    for tag in soup.find_all(_DROPPED_TAGS):
        tag.decompose()
    for tag in soup.find_all(re.compile(r"^h[1-6]$")):
        heading = " ".join(tag.get_text(" ").split())
        tag.replace_with(f"\n\n{'#' * int(tag.name[1])} {heading}\n\n")
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n\n")
        tag.insert_after("\n\n")

    lines = (" ".join(line.split()) for line in soup.get_text().splitlines())
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return title or None, text


def _parse_csv(path: Path, content: str) -> list[FaqEntry]:
    reader = csv.reader(io.StringIO(content, newline=""), strict=True)
    try:
        header = [name.strip().lower() for name in next(reader)]
    except (csv.Error, StopIteration) as error:
        raise DocumentFormatError(f"{path}, line 1: unreadable CSV header: {error}") from error
    missing = {"question", "answer"} - set(header)
    if missing:
        raise DocumentFormatError(
            f"{path}, line 1: CSV header {header} lacks column(s) {sorted(missing)}; the "
            "header must name question and answer, and may name title"
        )

    entries = []
    line = reader.line_num + 1
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                entries.append(_csv_row_to_entry(path, line, header, row))
            line = reader.line_num + 1
    except csv.Error as error:
        raise DocumentFormatError(f"{path}, line {line}: malformed CSV: {error}") from error
    return _require_entries(path, entries)


def _csv_row_to_entry(path: Path, line: int, header: list[str], row: list[str]) -> FaqEntry:
    if len(row) != len(header):
        raise DocumentFormatError(
            f"{path}, line {line}: expected {len(header)} fields as in the header, found "
            f"{len(row)}; quote fields that contain commas"
        )
    values = dict(zip(header, row, strict=True))
    return _make_entry(path, line, values)


def _parse_jsonl(path: Path, content: str) -> list[FaqEntry]:
    entries = []
    for line, text in enumerate(content.splitlines(), start=1):
        if not text.strip():
            continue
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise DocumentFormatError(
                f"{path}, line {line}: invalid JSON: {error.msg} at column {error.colno}"
            ) from error
        if not isinstance(values, dict):
            raise DocumentFormatError(
                f"{path}, line {line}: expected a JSON object with question and answer, "
                f"found {type(values).__name__}"
            )
        entries.append(_make_entry(path, line, values))
    return _require_entries(path, entries)


def _make_entry(path: Path, line: int, values: dict) -> FaqEntry:
    for key in ("question", "answer"):
        value = values.get(key)
        if not isinstance(value, str) or not value.strip():
            raise DocumentFormatError(
                f"{path}, line {line}: {key!r} is missing or empty; every entry needs a "
                "non-empty question and answer"
            )
    title = values.get("title")
    if title is not None and not isinstance(title, str):
        raise DocumentFormatError(
            f"{path}, line {line}: 'title' must be a string, found {type(title).__name__}"
        )
    return FaqEntry(
        question=values["question"].strip(),
        answer=values["answer"].strip(),
        title=title.strip() if title and title.strip() else None,
        line=line,
    )


def _require_entries(path: Path, entries: list[FaqEntry]) -> list[FaqEntry]:
    if not entries:
        raise _SkippableFormatError(f"{path}: FAQ file has no entries")
    return entries
