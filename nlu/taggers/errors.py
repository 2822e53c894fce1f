"""Exceptions raised when an entity tagger is loaded or run."""

from nlu.manifest import ModelFolderError


class TaggerError(Exception):
    """Base class of every entity-tagger error."""


class TaggerLoadError(TaggerError, ModelFolderError):
    """A tagger folder or base model is missing, unreadable or disagrees with its manifest.

    It is a ``ModelFolderError`` (and so a ``ValueError``) like the errors of other model
    folders.
    """
