"""Run a causal LM for evaluation: load it, score answer perplexity, generate answers greedily.

Example:
    >>> model, tokenizer = load_model(Path("runs/a/model"))
    >>> generate_answers(model, tokenizer, prompts, max_new_tokens=64,
    ...                  max_prompt_tokens=960, batch_size=8)
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from finetune.tokenization import IGNORE_INDEX, TokenizedExample, tokenize_examples

logger = logging.getLogger(__name__)


def load_model(model_path: Path, *, device: str | None = None) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer from a local folder for evaluation.

    Weights load in bfloat16 on a CUDA GPU that supports it, else in float32. The
    tokenizer pads on the left, with the end-of-sequence token when it has no pad token.

    Returns:
        The model in eval mode on ``device``, and the tokenizer.

    Raises:
        FileNotFoundError: If ``model_path`` has no config.json.
        ValueError: If the tokenizer has no chat template.
    """
    if not (model_path / "config.json").is_file():
        raise FileNotFoundError(
            f"model folder {model_path} is missing or has no config.json: pass a local "
            "folder written by save_pretrained, such as a training run's model/ folder"
        )
    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    if not tokenizer.chat_template:
        raise ValueError(
            f"tokenizer in {model_path} has no chat template: evaluate an instruction-tuned "
            "chat model, or add a chat_template.jinja file to the folder"
        )
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    torch_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    # NOTE: the tests run on the CPU only, so the CUDA and bfloat16 path is untested.
    use_bf16 = torch_device.type == "cuda" and torch.cuda.is_bf16_supported()
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        model_path, dtype=torch.bfloat16 if use_bf16 else torch.float32, local_files_only=True
    )
    model.to(torch_device).eval()
    logger.info(
        "Loaded %s on %s in %.2f s", model_path, torch_device, time.perf_counter() - started
    )
    return model, tokenizer


def compute_perplexity(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Sequence[dict[str, str]]],
    *,
    max_seq_len: int,
    batch_size: int,
    description: str = "model",
) -> float:
    """Compute the perplexity: exp of the mean negative log-likelihood per answer token.

    The answer tokens, and the end-of-turn token after each answer, are those that
    ``finetune.tokenization.tokenize_examples`` labels for training, so the loss covers
    the same tokens as the training and validation loss.

    Raises:
        ValueError: If no conversation fits in ``max_seq_len`` (see ``tokenize_examples``).
    """
    started = time.perf_counter()
    tokenized = tokenize_examples(conversations, tokenizer, max_seq_len=max_seq_len)
    if tokenized.rejected:
        logger.warning(
            "Left %d examples out of the perplexity because their answers do not fit in "
            "max_seq_len %d: raise max_seq_len to include them",
            sum(tokenized.rejected.values()),
            max_seq_len,
        )
    if not tokenized.examples:
        raise ValueError(
            f"no example fits in max_seq_len {max_seq_len}, so there is no perplexity: "
            "raise max_seq_len"
        )

    # Sorted by length, a batch wastes less compute on padding. The sum does not depend
    # on the order.
    examples = sorted(tokenized.examples, key=lambda example: len(example.input_ids))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total_nll = 0.0
    total_tokens = 0
    for start in tqdm(
        range(0, len(examples), batch_size), desc=f"{description} perplexity", unit="batch"
    ):
        batch = examples[start : start + batch_size]
        nll, tokens = _answer_nll(model, batch, pad_id)
        total_nll += nll
        total_tokens += tokens

    perplexity = math.exp(total_nll / total_tokens)
    logger.info(
        "Perplexity of %s is %.3f over %d answer tokens, in %.1f s",
        description,
        perplexity,
        total_tokens,
        time.perf_counter() - started,
    )
    return perplexity


def _answer_nll(model: Any, batch: Sequence[TokenizedExample], pad_id: int) -> tuple[float, int]:
    """Compute the summed negative log-likelihood of the labelled tokens and their count."""
    length = max(len(example.input_ids) for example in batch)
    input_ids = torch.full((len(batch), length), pad_id, dtype=torch.long)  # (B, T)
    labels = torch.full((len(batch), length), IGNORE_INDEX, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((len(batch), length), dtype=torch.long)  # (B, T)
    for row, example in enumerate(batch):
        size = len(example.input_ids)
        input_ids[row, :size] = torch.tensor(example.input_ids)
        labels[row, :size] = torch.tensor(example.labels)
        attention_mask[row, :size] = 1

    with torch.inference_mode():
        logits = model(
            input_ids=input_ids.to(model.device), attention_mask=attention_mask.to(model.device)
        ).logits  # (B, T, vocab)
    # The logits at position t predict the token at t + 1.
    targets = labels[:, 1:].to(model.device)  # (B, T - 1)
    is_answer = targets != IGNORE_INDEX
    nll = torch.nn.functional.cross_entropy(
        logits[:, :-1][is_answer].float(), targets[is_answer], reduction="sum"
    )
    return float(nll), int(is_answer.sum())


def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[dict[str, str]]],
    *,
    max_new_tokens: int,
    max_prompt_tokens: int,
    batch_size: int,
    description: str = "model",
) -> list[str]:
    """Generate one answer per prompt with greedy decoding, in batches with left padding.

    Each prompt is rendered with the chat template and ``add_generation_prompt=True``.
    A prompt over ``max_prompt_tokens`` loses its oldest context turns, keeping the
    system message, and then its first tokens.

    Args:
        model: A causal LM in eval mode.
        tokenizer: Its tokenizer, with a chat template and a pad token.
        prompts: Chat messages per example, ending with the user question.
        max_new_tokens: Maximum tokens generated per answer.
        max_prompt_tokens: Maximum prompt tokens per example.
        batch_size: Prompts per ``generate`` call.
        description: Label of the progress bar and log lines.

    Returns:
        The decoded new tokens of each answer, special tokens and surrounding
        whitespace removed, in the order of ``prompts``.
    """
    started = time.perf_counter()
    prompt_ids = [_encode_prompt(messages, tokenizer, max_prompt_tokens) for messages in prompts]
    generation_config = _greedy_generation_config(model, tokenizer, max_new_tokens)

    # Sorted by length, a batch wastes less compute on padding. The answers are put back
    # in the order of the prompts.
    order = sorted(range(len(prompt_ids)), key=lambda index: len(prompt_ids[index]))
    answers = [""] * len(prompt_ids)
    new_tokens = 0
    for start in tqdm(
        range(0, len(order), batch_size), desc=f"{description} generation", unit="batch"
    ):
        indices = order[start : start + batch_size]
        inputs = tokenizer.pad(
            {"input_ids": [prompt_ids[index] for index in indices]},
            padding_side="left",
            return_tensors="pt",
        ).to(model.device)
        with torch.inference_mode():
            output = model.generate(**inputs, generation_config=generation_config)
        # With left padding every prompt ends at the same column, so new tokens follow it.
        new_ids = output[:, inputs["input_ids"].shape[1] :]  # (B, new tokens)
        new_tokens += int((new_ids != generation_config.pad_token_id).sum())
        texts = tokenizer.batch_decode(new_ids, skip_special_tokens=True)
        for index, text in zip(indices, texts, strict=True):
            answers[index] = text.strip()

    seconds = time.perf_counter() - started
    logger.info(
        "Generated %d answers with %s in %.1f s (%.2f answers/s, about %d new tokens)",
        len(answers),
        description,
        seconds,
        len(answers) / max(seconds, 1e-9),
        new_tokens,
    )
    return answers


def _encode_prompt(
    messages: Sequence[dict[str, str]], tokenizer: Any, max_prompt_tokens: int
) -> list[int]:
    kept = list(messages)
    ids = _render_prompt_ids(kept, tokenizer)
    while len(ids) > max_prompt_tokens and _drop_oldest_turn(kept):
        ids = _render_prompt_ids(kept, tokenizer)
    if len(ids) > max_prompt_tokens:
        # NOTE: this cut also removes the template's opening tokens, as in training.
        ids = ids[-max_prompt_tokens:]
    return ids


def _render_prompt_ids(messages: Sequence[dict[str, str]], tokenizer: Any) -> list[int]:
    # Rendered to text, then tokenized without special tokens, as tokenize_examples does.
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _drop_oldest_turn(messages: list[dict[str, str]]) -> bool:
    """Drop the oldest context turn in place and return whether one was dropped.

    The system message and the question stay, and the first context message left
    after the system message is a user message when there is one.
    """
    start = 1 if messages[0]["role"] == "system" else 0
    if len(messages) - start <= 1:
        return False
    del messages[start]
    while len(messages) - start > 1 and messages[start]["role"] != "user":
        del messages[start]
    return True


def _greedy_generation_config(model: Any, tokenizer: Any, max_new_tokens: int) -> Any:
    config = copy.deepcopy(model.generation_config)
    config.max_new_tokens = max_new_tokens
    config.max_length = None
    config.do_sample = False
    # Unset the sampling options that a model's generation_config.json may set, because
    # transformers warns when they are set for greedy decoding.
    config.temperature = None
    config.top_p = None
    config.top_k = None
    # Stop at the model's end-of-sequence tokens and the tokenizer's, which is the
    # end-of-turn token of chat models such as SmolLM2 ("<|im_end|>").
    eos = config.eos_token_id
    eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos_ids:
        eos_ids.append(tokenizer.eos_token_id)
    config.eos_token_id = eos_ids or None
    config.pad_token_id = tokenizer.pad_token_id
    return config
