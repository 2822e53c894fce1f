"""Errors of an evaluation run."""

from __future__ import annotations


class EvaluationError(Exception):
    """An evaluation run could not start or finish."""


class NoHeldOutDialogsError(EvaluationError):
    """No stored conversation matches the held-out selection."""


class UnknownVersionError(EvaluationError):
    """A requested dialog model version is not registered or cannot be served."""


class OutputFolderError(EvaluationError):
    """The output folder cannot be created or written."""
