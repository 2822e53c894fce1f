"""Exceptions raised by the storage layer."""


class StorageError(Exception):
    """Base class of every storage error."""


class NotFoundError(StorageError):
    """A row looked up by id or key does not exist."""


class DatabaseUnavailableError(StorageError):
    """The database cannot be reached or its schema cannot be brought up to date."""


class ModelActivationError(StorageError):
    """A model version cannot be activated or rolled back in its current state."""
