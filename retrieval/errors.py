"""Exceptions raised by the retrieval package."""


class RetrievalError(Exception):
    """Base class of every retrieval error."""


class EmbeddingModelError(RetrievalError):
    """The embedding model cannot be found, loaded or run."""


class DocumentFormatError(RetrievalError):
    """A knowledge file cannot be read: bad encoding, empty, unsupported or malformed."""


class SourceNotFoundError(RetrievalError):
    """A path given for indexing does not exist."""


class IndexCorruptError(RetrievalError):
    """The index files on disk are missing, unreadable or disagree with their manifest."""
