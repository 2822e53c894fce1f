"""Generation with a Hugging Face transformers chat model in this process.

Example:
    >>> path = resolve_model_path("packaged:SmolLM2-135M-Instruct", cache_dir)
    >>> generator = TransformersGenerator(path)
    >>> generator.generate([ChatMessage("user", "Hi")], max_new_tokens=60, temperature=0.0)
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from jinja2 import TemplateError
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from bot.generation.base import ChatMessage, Generation, Generator, validate_generation_request
from bot.generation.errors import GenerationError, GenerationTimeoutError, ModelUnavailableError

logger = logging.getLogger(__name__)

# Config attributes that hold the context window, by model family.
CONTEXT_LENGTH_ATTRIBUTES = ("max_position_embeddings", "n_positions", "max_sequence_length")
# tokenizer.model_max_length is a huge sentinel (about 1e30) when a tokenizer sets none.
MAX_PLAUSIBLE_CONTEXT_TOKENS = 10_000_000


class TransformersGenerator(Generator):
    """A chat model loaded with ``AutoModelForCausalLM`` from a local folder.

    Prompts go through the tokenizer's chat template. A prompt longer than the context
    window minus ``max_new_tokens`` loses its oldest non-system turns first and then its
    first tokens. Calls from several threads run one at a time behind a lock, so a second
    caller waits for the first reply.

    The packaged SmolLM2-135M-Instruct needs about 550 MB of memory in fp32 and writes 60
    tokens in about 2.5 s on a 2-core CPU (bench/bench_generation.py, one run).

    Args:
        model_path: Local folder written by ``save_pretrained``. Use
            ``resolve_model_path`` to turn a configured name into one.
        device: Torch device. None picks "cuda" when available, else "cpu".
        dtype: Weight dtype. None picks bfloat16 on CUDA (float16 where the GPU lacks
            bfloat16) and float32 on CPU.
        model_name: Name reported in ``Generation.model``. None uses the folder name.
        timeout_s: Maximum seconds that one ``model.generate`` call may run, not counting
            the wait for another thread's call. None means no limit.
        max_context_tokens: Context window in tokens, prompt and reply together. None
            uses the model's own limit. A value above the model's limit is rejected.
        repetition_penalty: Divides the logits of tokens already in the prompt or reply;
            1.0 disables it. Small models such as SmolLM2-135M repeat sentences under
            greedy decoding without it.

    Raises:
        ValueError: If ``timeout_s`` or ``max_context_tokens`` is out of range.
        ModelUnavailableError: If the folder is missing, cannot be loaded, or its
            tokenizer has no chat template.
    """

    def __init__(
        self,
        model_path: Path | str,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        model_name: str | None = None,
        timeout_s: float | None = None,
        max_context_tokens: int | None = None,
        repetition_penalty: float = 1.0,
    ) -> None:
        model_path = Path(model_path).expanduser()
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive or None, got {timeout_s}")
        if max_context_tokens is not None and max_context_tokens < 2:
            raise ValueError(f"max_context_tokens must be at least 2, got {max_context_tokens}")
        if not model_path.is_dir():
            raise ModelUnavailableError(
                f"model folder {str(model_path)!r} not found: pass a local folder, and turn "
                "Hugging Face ids or 'packaged:' names into one with resolve_model_path"
            )

        self.device = torch.device(device) if device is not None else _default_device()
        self.dtype = dtype if dtype is not None else _default_dtype(self.device)
        self.model_name = model_name or model_path.name
        self.timeout_s = timeout_s
        self.repetition_penalty = repetition_penalty
        self.tokenizer = _load_tokenizer(model_path)
        self.model = _load_model(model_path, self.device, self.dtype)
        self.max_context_tokens = _choose_context_length(
            self.model.config, self.tokenizer, max_context_tokens, model_path
        )
        self._eos_token_ids = _eos_token_ids(self.model, self.tokenizer)
        self._lock = threading.Lock()
        logger.info(
            "Loaded dialog model %s on %s (%s, context %d tokens)",
            self.model_name,
            self.device,
            self.dtype,
            self.max_context_tokens,
        )

    def render_prompt(self, messages: Sequence[ChatMessage]) -> str:
        """Return the prompt text that the chat template makes of ``messages``, untruncated.

        Raises:
            GenerationError: If the chat template rejects the messages, for example a
                template that requires alternating user and assistant turns.
        """
        with self._lock:
            return self._apply_chat_template(messages, tokenize=False)

    def generate(
        self, messages: Sequence[ChatMessage], *, max_new_tokens: int, temperature: float
    ) -> Generation:
        """Generate the next assistant turn; see ``Generator.generate``.

        Raises:
            ValueError: If an argument is invalid or ``max_new_tokens`` leaves no room
                for a prompt in the context window.
            GenerationTimeoutError: If generation ran longer than ``timeout_s``.
            GenerationError: If the chat template rejects the messages or the model fails,
                for example out of GPU memory.
        """
        validate_generation_request(messages, max_new_tokens, temperature)
        max_prompt_tokens = self.max_context_tokens - max_new_tokens
        if max_prompt_tokens < 1:
            raise ValueError(
                f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the "
                f"{self.max_context_tokens}-token context of {self.model_name}: lower it"
            )

        started = time.perf_counter()
        with self._lock:
            prompt_ids, is_truncated = self._encode_prompt(messages, max_prompt_tokens)
            new_ids, model_seconds = self._run_model(prompt_ids, max_new_tokens, temperature)
            # Tokenising and decoding stay under the lock because a fast tokenizer shared
            # across threads can raise "RuntimeError: Already borrowed", see
            # https://github.com/huggingface/tokenizers/issues/537
            text = self.tokenizer.decode(new_ids, skip_special_tokens=True).strip()
        seconds = time.perf_counter() - started

        finish_reason = self._finish_reason(new_ids, max_new_tokens, model_seconds)
        logger.debug(
            "Generated %d tokens from a %d-token prompt in %.2f s",
            len(new_ids),
            len(prompt_ids),
            seconds,
        )
        return Generation(
            text=text,
            model=self.model_name,
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(new_ids),
            seconds=seconds,
            finish_reason=finish_reason,
            is_prompt_truncated=is_truncated,
        )

    def close(self) -> None:
        """Drop the model so that its memory is freed once nothing else references it."""
        with self._lock:
            self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _apply_chat_template(self, messages: Sequence[ChatMessage], *, tokenize: bool):
        try:
            result = self.tokenizer.apply_chat_template(
                [message.to_dict() for message in messages],
                add_generation_prompt=True,
                tokenize=tokenize,
                return_dict=tokenize,
            )
        except TemplateError as error:
            raise GenerationError(
                f"the chat template of {self.model_name} rejected the messages "
                f"(roles {[message.role for message in messages]}): {error}"
            ) from error
        return result["input_ids"] if tokenize else result

    def _encode_prompt(
        self, messages: Sequence[ChatMessage], max_prompt_tokens: int
    ) -> tuple[list[int], bool]:
        """Tokenise the conversation, dropping old turns and then leading tokens to fit."""
        kept_messages = list(messages)
        prompt_ids = self._apply_chat_template(kept_messages, tokenize=True)
        original_tokens = len(prompt_ids)
        dropped_turns = 0
        while len(prompt_ids) > max_prompt_tokens and _drop_oldest_turn(kept_messages):
            dropped_turns += 1
            prompt_ids = self._apply_chat_template(kept_messages, tokenize=True)
        cut_tokens = max(0, len(prompt_ids) - max_prompt_tokens)
        if cut_tokens:
            # NOTE: cutting from the left can remove the system message and its markers.
            # The model still receives the end of the last turn and the assistant header.
            prompt_ids = prompt_ids[cut_tokens:]

        is_truncated = dropped_turns > 0 or cut_tokens > 0
        if is_truncated:
            logger.warning(
                "Prompt of %d tokens exceeds the %d-token limit of %s: dropped %d earlier "
                "turns and the first %d tokens. Send fewer history turns or passages",
                original_tokens,
                max_prompt_tokens,
                self.model_name,
                dropped_turns,
                cut_tokens,
            )
        return prompt_ids, is_truncated

    def _run_model(
        self, prompt_ids: list[int], max_new_tokens: int, temperature: float
    ) -> tuple[list[int], float]:
        """Return the new token ids and the seconds that ``model.generate`` ran."""
        if self.model is None:
            raise GenerationError(f"generator for {self.model_name} is closed: build a new one")
        input_ids = torch.tensor([prompt_ids], device=self.device)  # (1, T)
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                output = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    generation_config=self._generation_config(max_new_tokens, temperature),
                )
        except RuntimeError as error:  # includes torch.cuda.OutOfMemoryError
            raise GenerationError(
                f"{self.model_name} failed to generate from a {len(prompt_ids)}-token prompt "
                f"on {self.device}: {error}"
            ) from error
        return output[0, len(prompt_ids) :].tolist(), time.perf_counter() - started

    def _generation_config(self, max_new_tokens: int, temperature: float):
        config = copy.deepcopy(self.model.generation_config)
        config.max_new_tokens = max_new_tokens
        config.max_length = None
        config.max_time = self.timeout_s
        config.eos_token_id = self._eos_token_ids
        config.repetition_penalty = self.repetition_penalty
        if config.pad_token_id is None:
            config.pad_token_id = self._eos_token_ids[0]
        if temperature == 0.0:
            # Unset the sampling options that a model's generation_config.json may carry,
            # because transformers warns when they are set for greedy decoding.
            config.do_sample = False
            config.temperature = None
            config.top_p = None
            config.top_k = None
        else:
            config.do_sample = True
            config.temperature = temperature
        return config

    def _finish_reason(self, new_ids: list[int], max_new_tokens: int, seconds: float) -> str:
        if new_ids and new_ids[-1] in self._eos_token_ids:
            return "stop"
        if len(new_ids) >= max_new_tokens:
            return "length"
        if self.timeout_s is None or seconds < self.timeout_s:
            # Stopped by another criterion, such as stop_strings in generation_config.json.
            return "stop"
        raise GenerationTimeoutError(
            f"{self.model_name} timed out after {seconds:.1f} s (timeout_s={self.timeout_s}) "
            f"with {len(new_ids)} of {max_new_tokens} tokens: increase generation.timeout_s, "
            "lower generation.max_new_tokens or use a GPU"
        )


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _default_dtype(device: torch.device) -> torch.dtype:
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _load_tokenizer(model_path: Path) -> PreTrainedTokenizerBase:
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
    except (OSError, ValueError) as error:
        raise ModelUnavailableError(
            f"failed to load the tokenizer from {str(model_path)!r}: {error}. Point "
            "generation.model at a folder written by save_pretrained"
        ) from error
    if not tokenizer.chat_template:
        raise ModelUnavailableError(
            f"tokenizer in {str(model_path)!r} has no chat template: use an instruction-tuned "
            "chat model, or add a chat_template.jinja file to the folder"
        )
    return tokenizer


def _load_model(model_path: Path, device: torch.device, dtype: torch.dtype):
    started = time.perf_counter()
    try:
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    except (OSError, ValueError) as error:
        raise ModelUnavailableError(
            f"failed to load a causal language model from {str(model_path)!r}: {error}. Check "
            "that the folder contains config.json and safetensors weights"
        ) from error
    model.to(device).eval()
    logger.info("Loaded weights from %s in %.2f s", model_path, time.perf_counter() - started)
    return model


def _choose_context_length(
    config, tokenizer: PreTrainedTokenizerBase, requested: int | None, model_path: Path
) -> int:
    limits = [getattr(config, name, None) for name in CONTEXT_LENGTH_ATTRIBUTES]
    limits.append(tokenizer.model_max_length)
    known = [limit for limit in limits if isinstance(limit, int) and limit > 0]
    plausible = [limit for limit in known if limit < MAX_PLAUSIBLE_CONTEXT_TOKENS]
    model_limit = min(plausible) if plausible else None
    if requested is not None:
        if model_limit is not None and requested > model_limit:
            raise ValueError(
                f"max_context_tokens={requested} exceeds the {model_limit}-token context of "
                f"{str(model_path)!r}: pass at most {model_limit} or None"
            )
        return requested
    if model_limit is None:
        logger.warning(
            "Model in %s states no context length; assuming 2048 tokens. Pass "
            "max_context_tokens to set it",
            model_path,
        )
        return 2048
    return model_limit


def _eos_token_ids(model, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        raise ModelUnavailableError(
            f"model {model.name_or_path!r} defines no end-of-sequence token: set eos_token_id "
            "in its generation_config.json"
        )
    return [eos] if isinstance(eos, int) else list(eos)


def _drop_oldest_turn(messages: list[ChatMessage]) -> bool:
    """Remove the oldest non-system message except the last one; return whether one went."""
    for index, message in enumerate(messages[:-1]):
        if message.role != "system":
            del messages[index]
            return True
    return False
