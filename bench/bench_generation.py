"""Benchmark the packaged dialog model on CPU: conversion, load and generation latency.

Run from the repository root:

    python bench/bench_generation.py --rounds 3

It converts SmolLM2-135M-Instruct into a temporary model cache (about 540 MB, deleted
afterwards unless --cache-dir is given), loads the converted folder again, and generates
``--max-new-tokens`` tokens greedily for each of five short support prompts.
"""

from __future__ import annotations

import argparse
import logging
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bot.generation import ChatMessage, ensure_packaged_model
from bot.generation.model_cache import MARKER_FILE, PACKAGED_MODELS, read_conversion_marker
from bot.generation.transformers_backend import TransformersGenerator

logger = logging.getLogger(__name__)

MODEL = "SmolLM2-135M-Instruct"
SYSTEM_PROMPT = "You are a customer support agent for an online shop. Answer briefly."
SUPPORT_PROMPTS = [
    "How do I reset my password?",
    "My parcel has not arrived after ten days. What can I do?",
    "Can I change the delivery address of an order I placed yesterday?",
    "How long does a refund take to reach my card?",
    "The app crashes when I open my order history. Any fix?",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="Model cache to convert into and keep. Default: a temporary folder, deleted.",
    )
    parser.add_argument("--rounds", type=int, default=3, help="Passes over the 5 prompts.")
    parser.add_argument("--max-new-tokens", type=int, default=60, help="Tokens per reply.")
    parser.add_argument("--loads", type=int, default=3, help="Repeated loads to time.")
    return parser.parse_args()


def percentile(values: list[float], fraction: float) -> float:
    """Return the ``fraction`` quantile of ``values`` by linear interpolation."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def time_conversion(cache_dir: Path) -> tuple[Path, float]:
    target = cache_dir / PACKAGED_MODELS[MODEL].cache_folder
    if (target / MARKER_FILE).exists():
        print(f"conversion: skipped, {target} is already converted")
        return target, float("nan")
    started = time.perf_counter()
    path = ensure_packaged_model(MODEL, cache_dir)
    return path, time.perf_counter() - started


def time_loads(cache_dir: Path, loads: int) -> tuple[TransformersGenerator, list[float]]:
    """Time a later start: the cache check plus loading tokenizer and weights."""
    seconds = []
    generator = None
    for _ in range(loads):
        generator = None
        started = time.perf_counter()
        path = ensure_packaged_model(MODEL, cache_dir)
        generator = TransformersGenerator(path, device="cpu")
        seconds.append(time.perf_counter() - started)
    return generator, seconds


def time_generation(
    generator: TransformersGenerator, rounds: int, max_new_tokens: int
) -> tuple[list[float], list[int]]:
    # One untimed call warms up the kernels and the tokenizer.
    warmup = [ChatMessage("system", SYSTEM_PROMPT), ChatMessage("user", "Hello")]
    generator.generate(warmup, max_new_tokens=4, temperature=0.0)
    latencies, token_counts = [], []
    for _ in range(rounds):
        for prompt in SUPPORT_PROMPTS:
            messages = [ChatMessage("system", SYSTEM_PROMPT), ChatMessage("user", prompt)]
            result = generator.generate(messages, max_new_tokens=max_new_tokens, temperature=0.0)
            latencies.append(result.seconds)
            token_counts.append(result.completion_tokens)
    return latencies, token_counts


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="supportbot-bench-"))
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, torch threads {torch.get_num_threads()}")
    try:
        path, conversion_s = time_conversion(cache_dir)
        marker = read_conversion_marker(path)
        print(f"conversion (first start): {conversion_s:.1f} s, marker {marker}")

        generator, load_s = time_loads(cache_dir, args.loads)
        print(
            f"load (later start, {len(load_s)} runs): median {statistics.median(load_s):.2f} s, "
            f"max {max(load_s):.2f} s"
        )

        latencies, token_counts = time_generation(generator, args.rounds, args.max_new_tokens)
        tokens_per_s = sum(token_counts) / sum(latencies)
        print(
            f"generation ({len(latencies)} replies, max_new_tokens={args.max_new_tokens}, greedy): "
            f"p50 {percentile(latencies, 0.5):.2f} s, p95 {percentile(latencies, 0.95):.2f} s, "
            f"mean {statistics.mean(token_counts):.0f} tokens, {tokens_per_s:.1f} tokens/s"
        )
    finally:
        if args.cache_dir is None:
            shutil.rmtree(cache_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
