"""The dialog model behind a small generator interface, with two backends.

``TransformersGenerator`` (in ``bot.generation.transformers_backend``) runs a chat model
in this process, and ``OpenAICompatibleGenerator`` (in ``bot.generation.openai_backend``)
calls an OpenAI-compatible server. This package imports neither, so importing it does not
import torch. ``build_generator`` picks one from the settings.
"""

from bot.generation.base import (
    ChatMessage,
    Generation,
    Generator,
    build_generator,
    validate_generation_request,
)
from bot.generation.errors import GenerationError, GenerationTimeoutError, ModelUnavailableError
from bot.generation.model_cache import ensure_packaged_model, resolve_model_path

__all__ = [
    "ChatMessage",
    "Generation",
    "GenerationError",
    "GenerationTimeoutError",
    "Generator",
    "ModelUnavailableError",
    "build_generator",
    "ensure_packaged_model",
    "resolve_model_path",
    "validate_generation_request",
]
