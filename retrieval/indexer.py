"""Build and update the knowledge index: stored chunks with embeddings, and the FAISS file.

The database is the source of truth. Each run embeds the new and changed content
first, then writes all rows with their float32 embeddings in one transaction, and only
then saves the FAISS index, atomically. A failure while embedding or writing therefore
leaves both the database and the previous index as they were. A failure after the
commit leaves an index whose manifest fingerprint no longer matches the rows, and
``sync_index`` (called by the next run and by ``HybridRetriever`` on load) rebuilds it
from the stored embeddings without re-embedding.

Example:
    >>> indexer = KnowledgeIndexer(session_factory, embedder, Path("index"))
    >>> report = indexer.index_paths([Path("help-centre")])
    >>> report.chunks_embedded
    42
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker
from tqdm import tqdm

from retrieval.chunker import (
    ChunkDraft,
    TextChunker,
    build_answer_pairs,
    chunk_embedding_text,
    draft_answer_chunks,
)
from retrieval.embedder import Embedder
from retrieval.errors import DocumentFormatError, IndexCorruptError
from retrieval.faiss_index import FaissPassageIndex, IndexManifest, read_manifest
from retrieval.language import detect_language
from retrieval.loaders import SourceDocument, load_documents
from storage import repository
from storage.models import Chunk, Conversation, DocumentKind, KnowledgeDocument

logger = logging.getLogger(__name__)

DIALOG_SOURCE_PREFIX = "conversation:"
# Length limit of KnowledgeDocument.source.
MAX_SOURCE_CHARS = 1024
_CONVERSATION_PAGE = 500


@dataclass
class IndexReport:
    """Counts of one indexing run."""

    documents_added: int = 0
    documents_changed: int = 0
    documents_unchanged: int = 0
    documents_removed: int = 0
    chunks_embedded: int = 0
    elapsed_s: float = 0.0

    def summary(self, subject: str = "Indexed documents") -> str:
        """Return one human-readable line for the command line, starting with ``subject``."""
        return (
            f"{subject}: {self.documents_added} added, {self.documents_changed} changed, "
            f"{self.documents_unchanged} unchanged, {self.documents_removed} removed; "
            f"{self.chunks_embedded} chunks embedded in {self.elapsed_s:.1f} s."
        )


@dataclass
class _DocumentPlan:
    """A new or changed document to write, with its chunks."""

    source: str
    title: str
    kind: DocumentKind
    language: str | None
    checksum: str
    drafts: list[ChunkDraft] = field(default_factory=list)


class KnowledgeIndexer:
    """Index knowledge files and past agent answers into the database and FAISS.

    Runs are serialised across processes by a lock file in ``index_dir``.

    Args:
        session_factory: Session factory of the supportbot database.
        embedder: Embedder for chunk texts; its ``name`` is stored with each vector.
        index_dir: Folder of the FAISS index; created if missing.
        chunk_max_chars: Maximum characters per passage chunk.
        chunk_overlap_chars: Characters repeated between neighbouring chunks.

    Raises:
        ValueError: If the chunk sizes are out of range (see ``TextChunker``).
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        embedder: Embedder,
        index_dir: Path,
        *,
        chunk_max_chars: int = 1200,
        chunk_overlap_chars: int = 150,
    ) -> None:
        self._chunker = TextChunker(max_chars=chunk_max_chars, overlap_chars=chunk_overlap_chars)

        self._session_factory = session_factory
        self._embedder = embedder
        self.index_dir = Path(index_dir)
        self.index_dir.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.index_dir / ".lock"))

    def index_paths(self, paths: Sequence[Path]) -> IndexReport:
        """Index knowledge files and folders.

        Documents are matched to stored ones by resolved path. A document whose checksum
        (of its bytes and the chunk settings) is unchanged is skipped. Stored documents
        under one of the given folders that the walk no longer reads (deleted, emptied
        or renamed files) are removed. Past answers are never touched.

        Returns:
            The counts of this run.

        Raises:
            SourceNotFoundError: If a path does not exist.
            DocumentFormatError: If a file cannot be read; nothing is written then.
            EmbeddingModelError: If embedding fails; nothing is written then.
        """
        started = time.perf_counter()
        documents = load_documents(paths)
        folders = [Path(p).expanduser().resolve() for p in paths if Path(p).expanduser().is_dir()]

        report = IndexReport()
        with self._lock:
            with self._session_factory() as session:
                stored = {
                    document.source: document.checksum
                    for document in repository.list_documents(session)
                    if document.kind != DocumentKind.DIALOG
                }
            plans = self._plan_files(documents, stored, report)
            read_sources = {document.source for document in documents}
            removed = [
                source
                for source in stored
                if source not in read_sources and _is_under(source, folders)
            ]
            self._apply(plans, removed, report)

        report.elapsed_s = time.perf_counter() - started
        logger.info("Indexed knowledge files %s", _format_report(report))
        return report

    def index_past_answers(self, *, min_answer_words: int = 6) -> IndexReport:
        """Index (customer question, next agent reply) pairs from stored conversations.

        Consecutive turns of one speaker are merged, and bot and system turns are
        ignored. Replies shorter than ``min_answer_words`` words (CJK characters count
        as half a word) are skipped. Each conversation with pairs becomes one
        document of kind DIALOG with source "conversation:<external_id>" and one chunk
        per pair. Documents of conversations that were deleted or no longer have pairs
        are removed.

        Returns:
            The counts of this run.

        Raises:
            ValueError: If ``min_answer_words`` is negative.
            EmbeddingModelError: If embedding fails; nothing is written then.
        """
        if min_answer_words < 0:
            raise ValueError(f"min_answer_words must be 0 or more, got {min_answer_words}")
        started = time.perf_counter()

        report = IndexReport()
        with self._lock:
            with self._session_factory() as session:
                stored = {
                    document.source: document.checksum
                    for document in repository.list_documents(session)
                    if document.kind == DocumentKind.DIALOG
                }
                plans, seen = self._plan_dialogs(session, stored, min_answer_words, report)
            removed = [source for source in stored if source not in seen]
            self._apply(plans, removed, report)

        report.elapsed_s = time.perf_counter() - started
        logger.info("Indexed past answers %s", _format_report(report))
        return report

    def sync_index(self) -> IndexManifest:
        """Bring the FAISS index in line with the stored chunks.

        Chunks embedded by another model, or without an embedding, are re-embedded and
        updated first. The index is then rebuilt from the stored embeddings unless its
        manifest already matches the rows and the model.

        Returns:
            The manifest of the index now on disk.

        Raises:
            EmbeddingModelError: If re-embedding fails.
            IndexCorruptError: If a stored embedding has the wrong size.
        """
        with self._lock:
            return self._sync_locked()

    def _plan_files(
        self, documents: list[SourceDocument], stored: dict[str, str], report: IndexReport
    ) -> list[_DocumentPlan]:
        plans = []
        for document in documents:
            if len(document.source) > MAX_SOURCE_CHARS:
                raise DocumentFormatError(
                    f"{document.source[:80]}...: path is longer than {MAX_SOURCE_CHARS} "
                    "characters; move the file to a shorter path"
                )
            checksum = self._document_checksum(document)
            if stored.get(document.source) == checksum:
                report.documents_unchanged += 1
                continue
            if document.source in stored:
                report.documents_changed += 1
            else:
                report.documents_added += 1
            plans.append(
                _DocumentPlan(
                    source=document.source,
                    title=document.title,
                    kind=document.kind,
                    language=document.language,
                    checksum=checksum,
                    drafts=self._chunker.split(document),
                )
            )
        return plans

    def _document_checksum(self, document: SourceDocument) -> str:
        # The chunk settings are part of the checksum, so changing them re-chunks.
        settings = f"{self._chunker.max_chars}:{self._chunker.overlap_chars}:"
        return hashlib.sha256((settings + document.checksum).encode()).hexdigest()

    def _plan_dialogs(
        self,
        session: Session,
        stored: dict[str, str],
        min_answer_words: int,
        report: IndexReport,
    ) -> tuple[list[_DocumentPlan], set[str]]:
        plans, seen = [], set()
        for conversation in _iter_conversations(session):
            pairs = build_answer_pairs(conversation.messages, min_answer_words=min_answer_words)
            if not pairs:
                continue
            source = f"{DIALOG_SOURCE_PREFIX}{conversation.external_id}"
            seen.add(source)
            payload = json.dumps([min_answer_words, pairs], ensure_ascii=False)
            checksum = hashlib.sha256(payload.encode()).hexdigest()
            if stored.get(source) == checksum:
                report.documents_unchanged += 1
                continue
            if source in stored:
                report.documents_changed += 1
            else:
                report.documents_added += 1
            plans.append(_plan_dialog(conversation, source, checksum, pairs))
        return plans, seen

    def _apply(self, plans: list[_DocumentPlan], removed: list[str], report: IndexReport) -> None:
        """Embed, write and index the planned changes; the caller holds the lock."""
        drafts = [draft for plan in plans for draft in plan.drafts]
        vectors = self._embed([_embedding_text(draft) for draft in drafts])
        report.chunks_embedded = len(drafts)
        report.documents_removed = len(removed)

        with self._session_factory.begin() as session:
            fingerprint_before = compute_source_fingerprint(session)
            old_ids = _delete_chunks(session, [plan.source for plan in plans] + removed)
            for source in removed:
                repository.delete_document(
                    session, repository.get_document_by_source(session, source)
                )
            new_ids = self._write_plans(session, plans, vectors)
            fingerprint_after = compute_source_fingerprint(session)

        if fingerprint_before == fingerprint_after:
            self._sync_locked()
            return
        self._update_index(fingerprint_before, fingerprint_after, old_ids, new_ids, vectors)

    def _write_plans(
        self, session: Session, plans: list[_DocumentPlan], vectors: np.ndarray
    ) -> np.ndarray:
        chunks: list[Chunk] = []
        for plan in plans:
            document = repository.get_document_by_source(session, plan.source)
            if document is None:
                document = KnowledgeDocument(source=plan.source)
                session.add(document)
            document.title = plan.title[:1024]
            document.kind = plan.kind
            document.language = plan.language
            document.checksum = plan.checksum
            for draft in plan.drafts:
                chunk = Chunk(
                    position=draft.position,
                    title=draft.title,
                    question=draft.question,
                    text=draft.text,
                    language=draft.language,
                    embedding_model=self._embedder.name,
                    embedding=vectors[len(chunks)].tobytes(),
                )
                document.chunks.append(chunk)
                chunks.append(chunk)
        session.flush()
        return np.array([chunk.id for chunk in chunks], dtype=np.int64)

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` in batches with a progress bar; rows keep the input order."""
        batch_size = self._embedder.batch_size
        vectors = np.zeros((len(texts), self._embedder.dimension), dtype=np.float32)
        # Batch texts of similar length together, longest first, so that little padding
        # is computed; sentence-transformers does the same inside one encode call.
        order = np.argsort([-len(text) for text in texts], kind="stable")
        with tqdm(total=len(texts), unit="chunk", desc="Embedding", disable=None) as progress:
            for start in range(0, len(texts), batch_size):
                rows = order[start : start + batch_size]
                vectors[rows] = self._embedder.embed([texts[row] for row in rows])
                progress.update(len(rows))
        return vectors

    def _update_index(
        self,
        fingerprint_before: str,
        fingerprint_after: str,
        old_ids: np.ndarray,
        new_ids: np.ndarray,
        vectors: np.ndarray,
    ) -> None:
        """Apply the change to the saved index, or rebuild it if that index was stale."""
        index = self._load_current_index(fingerprint_before)
        if index is None:
            self._sync_locked()
            return

        index.remove(old_ids)
        index.add(new_ids, vectors)
        index.save(
            self.index_dir,
            embedding_model=self._embedder.name,
            source_fingerprint=fingerprint_after,
        )

    def _load_current_index(self, fingerprint: str) -> FaissPassageIndex | None:
        """Return the saved index if it matches ``fingerprint`` and the model, else None."""
        try:
            manifest = read_manifest(self.index_dir)
            if (
                manifest is None
                or manifest.source_fingerprint != fingerprint
                or manifest.embedding_model != self._embedder.name
            ):
                return None
            index, _ = FaissPassageIndex.load(self.index_dir)
        except IndexCorruptError as error:
            logger.warning("Rebuilding the FAISS index because it is unusable: %s", error)
            return None
        return index

    def _sync_locked(self) -> IndexManifest:
        self._reembed_stale_chunks()
        with self._session_factory() as session:
            fingerprint = compute_source_fingerprint(session)
        if self._load_current_index(fingerprint) is not None:
            return read_manifest(self.index_dir)

        started = time.perf_counter()
        with self._session_factory() as session:
            ids, vectors = _read_embeddings(session, self._embedder.dimension)
        index = FaissPassageIndex(self._embedder.dimension)
        index.build(ids, vectors)
        manifest = index.save(
            self.index_dir, embedding_model=self._embedder.name, source_fingerprint=fingerprint
        )
        logger.info(
            "Rebuilt FAISS index from stored embeddings vectors=%d elapsed_s=%.2f",
            len(index),
            time.perf_counter() - started,
        )
        return manifest

    def _reembed_stale_chunks(self) -> None:
        """Re-embed chunks whose stored vector is missing or from another model."""
        with self._session_factory() as session:
            stale = session.execute(
                select(Chunk.id, Chunk.title, Chunk.question, Chunk.text).where(
                    (Chunk.embedding_model.is_(None))
                    | (Chunk.embedding_model != self._embedder.name)
                    | (Chunk.embedding.is_(None))
                )
            ).all()
        if not stale:
            return

        logger.info(
            "Re-embedding chunks stored without a vector of model=%s chunks=%d",
            self._embedder.name,
            len(stale),
        )
        vectors = self._embed(
            [
                chunk_embedding_text(title=row.title, question=row.question, text=row.text)
                for row in stale
            ]
        )
        with self._session_factory.begin() as session:
            for row, vector in zip(stale, vectors, strict=True):
                chunk = session.get(Chunk, row.id)
                if chunk is not None:
                    chunk.embedding_model = self._embedder.name
                    chunk.embedding = vector.tobytes()


def compute_source_fingerprint(session: Session) -> str:
    """Return a digest of the stored chunks that the FAISS index is built from.

    It covers each chunk's id, document id, embedding model and its document's checksum,
    so it changes when rows are added, removed, re-embedded, or replaced under a reused
    id (SQLite reuses the highest id after a delete).
    """
    rows = session.execute(
        select(Chunk.id, Chunk.document_id, Chunk.embedding_model, KnowledgeDocument.checksum)
        .join(KnowledgeDocument, Chunk.document_id == KnowledgeDocument.id)
        .order_by(Chunk.id)
    )
    digest = hashlib.sha256()
    for chunk_id, document_id, model, checksum in rows:
        digest.update(f"{chunk_id}:{document_id}:{model}:{checksum}\n".encode())
    return digest.hexdigest()


def _embedding_text(draft: ChunkDraft) -> str:
    return chunk_embedding_text(title=draft.title, question=draft.question, text=draft.text)


def _plan_dialog(
    conversation: Conversation, source: str, checksum: str, pairs: list[tuple[str, str]]
) -> _DocumentPlan:
    title = f"Conversation {conversation.external_id}"
    language = conversation.language or detect_language(" ".join(q for q, _ in pairs))
    return _DocumentPlan(
        source=source[:MAX_SOURCE_CHARS],
        title=title,
        kind=DocumentKind.DIALOG,
        language=language,
        checksum=checksum,
        drafts=draft_answer_chunks(title, pairs),
    )


def _iter_conversations(session: Session) -> Iterator[Conversation]:
    """Yield conversations with their messages, loading a page at a time."""
    last_id = 0
    while True:
        page = list(
            session.scalars(
                select(Conversation)
                .where(Conversation.id > last_id)
                .order_by(Conversation.id)
                .limit(_CONVERSATION_PAGE)
                .options(selectinload(Conversation.messages))
            )
        )
        if not page:
            return
        yield from page
        last_id = page[-1].id
        session.expunge_all()


def _delete_chunks(session: Session, sources: list[str]) -> np.ndarray:
    """Delete the chunks of the documents read from ``sources``; return their ids."""
    ids: list[int] = []
    for source in sources:
        document = repository.get_document_by_source(session, source)
        if document is None:
            continue
        ids.extend(chunk.id for chunk in document.chunks)
        document.chunks.clear()
    session.flush()
    return np.array(ids, dtype=np.int64)


def _read_embeddings(session: Session, dimension: int) -> tuple[np.ndarray, np.ndarray]:
    rows = session.execute(select(Chunk.id, Chunk.embedding).order_by(Chunk.id)).all()
    ids = np.array([row.id for row in rows], dtype=np.int64)
    vectors = np.zeros((len(rows), dimension), dtype=np.float32)
    for position, row in enumerate(rows):
        vector = np.frombuffer(row.embedding or b"", dtype=np.float32)
        if vector.shape != (dimension,):
            raise IndexCorruptError(
                f"chunk {row.id} has a stored embedding of {vector.size} values, expected "
                f"{dimension}: run `supportbot index` again to re-embed it"
            )
        vectors[position] = vector
    return ids, vectors


def _is_under(source: str, folders: list[Path]) -> bool:
    return any(Path(source).is_relative_to(folder) for folder in folders)


def _format_report(report: IndexReport) -> str:
    return (
        f"added={report.documents_added} changed={report.documents_changed} "
        f"unchanged={report.documents_unchanged} removed={report.documents_removed} "
        f"chunks_embedded={report.chunks_embedded} elapsed_s={report.elapsed_s:.2f}"
    )
