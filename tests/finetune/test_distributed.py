"""Tests for training in several processes: torchrun on 2 CPU processes, and the launch configs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from finetune.config import TrainingConfig
from finetune.distributed import distributed_training_arguments, launched_world_size
from finetune.packing import pack_examples
from finetune.tokenization import IGNORE_INDEX, tokenize_examples
from finetune.trainer import MODEL_DIR, REPORT_FILE
from tests.finetune.test_trainer import QUESTIONS_AND_ANSWERS, SYSTEM_PROMPT, WORDS, _write_dataset
from tests.utils.tiny_models import save_tiny_model_folder

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS_DIR = Path(__file__).resolve().parent / "distributed_scripts"
CONFIGS_DIR = REPOSITORY_ROOT / "finetune" / "accelerate_configs"
# Each launch takes about 10 s on 2 idle CPU cores. The limit leaves room for a loaded machine.
LAUNCH_TIMEOUT_S = 180
# Variables of an enclosing launch would make the launched processes join the wrong group.
_LAUNCH_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_torchrun(script: Path, *args: Path) -> str:
    """Run ``script`` in 2 processes with torchrun and return the output, or fail showing it."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(script),
        *map(str, args),
    ]
    env = {name: value for name, value in os.environ.items() if name not in _LAUNCH_VARIABLES}
    env.update(
        PYTHONPATH=str(REPOSITORY_ROOT),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
    )
    # A session of its own lets a timeout stop torchrun and the processes it started.
    process = subprocess.Popen(
        command,
        cwd=REPOSITORY_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"torchrun {script.name} timed out after {LAUNCH_TIMEOUT_S} s:\n{output}")
    assert process.returncode == 0, f"torchrun {script.name} exited {process.returncode}:\n{output}"
    return output


def _read_json(path: Path, output: str):
    assert path.is_file(), f"{path.name} was not written; torchrun output:\n{output}"
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory) -> Path:
    return save_tiny_model_folder(tmp_path_factory.mktemp("tiny-model"), WORDS)


@pytest.mark.slow
def test_accelerate_ddp_step_syncs_weights(tmp_path, tiny_model_path):
    output = _run_torchrun(SCRIPTS_DIR / "accelerate_step.py", tiny_model_path, tmp_path)

    batches = [_read_json(tmp_path / f"batch-rank{rank}.json", output) for rank in (0, 1)]
    assert [batch["world_size"] for batch in batches] == [2, 2]
    assert batches[0]["distributed_type"] == str(DistributedType.MULTI_CPU)
    assert batches[0]["input_ids"] != batches[1]["input_ids"], "both processes got the same row"
    initial = load_file(tmp_path / "initial.safetensors")
    rank0 = load_file(tmp_path / "weights-rank0.safetensors")
    rank1 = load_file(tmp_path / "weights-rank1.safetensors")
    unequal = [name for name in rank0 if not torch.equal(rank0[name], rank1[name])]
    assert not unequal, f"weights differ between processes after the step: {unequal}"
    assert any(not torch.equal(initial[name], rank0[name]) for name in initial)


def _expected_train_rows(dataset_dir: Path, model_path: Path, config: TrainingConfig):
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    lines = (dataset_dir / "train.jsonl").read_text(encoding="utf-8").splitlines()
    conversations = [json.loads(line)["messages"] for line in lines]
    examples = tokenize_examples(conversations, tokenizer, max_seq_len=config.max_seq_len).examples
    return pack_examples(examples, max_tokens=config.per_device_batch_tokens)


@pytest.mark.slow
def test_train_under_torchrun_saves_once(tmp_path, tiny_model_path):
    dataset_dir = _write_dataset(tmp_path / "data", QUESTIONS_AND_ANSWERS[:8], system=SYSTEM_PROMPT)
    config = TrainingConfig(
        model="tiny-llama",
        dataset_dir=dataset_dir,
        output_dir=tmp_path / "run",
        method="lora",
        lora_r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        learning_rate=1e-2,
        warmup_ratio=0.0,
        num_epochs=1,
        per_device_batch_tokens=64,
        max_seq_len=64,
        gradient_accumulation_steps=1,
        eval_every_steps=0,
    )
    config.to_json(tmp_path / "config.json")
    rows = _expected_train_rows(dataset_dir, tiny_model_path, config)
    # With an even row count each process trains on half of the rows, none twice.
    assert len(rows) == 4, f"the test expects 4 packed rows, got {len(rows)}"
    expected_answer_tokens = sum(int((row.labels != IGNORE_INDEX).sum()) for row in rows)

    output = _run_torchrun(
        SCRIPTS_DIR / "run_train.py", tmp_path / "config.json", tiny_model_path, tmp_path
    )

    model_dir = config.output_dir / MODEL_DIR
    saves = [_read_json(tmp_path / f"saves-rank{rank}.json", output) for rank in (0, 1)]
    assert saves == [[str(model_dir)], []], f"expected 1 save by process 0, got {saves}:\n{output}"
    results = [_read_json(tmp_path / f"result-rank{rank}.json", output) for rank in (0, 1)]
    assert results[0]["answer_tokens"] == results[1]["answer_tokens"]
    report = _read_json(config.output_dir / REPORT_FILE, output)
    assert report["num_processes"] == 2
    assert report["steps"] == len(rows) // 2
    assert report["answer_tokens"] == expected_answer_tokens
    assert report["input_tokens"] == sum(row.input_ids.numel() for row in rows)
    assert TrainingConfig.from_json(config.output_dir / "training_config.json") == config
    trained = AutoModelForCausalLM.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    assert any(
        not torch.equal(trained_weight, base_weight)
        for trained_weight, base_weight in zip(
            trained.state_dict().values(), base.state_dict().values(), strict=True
        )
    )


def test_launched_world_size_defaults_to_one(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)

    assert launched_world_size() == 1
    assert distributed_training_arguments() == {}


@pytest.mark.parametrize("value", ["0", "two"])
def test_launched_world_size_rejects_invalid(monkeypatch, value):
    monkeypatch.setenv("WORLD_SIZE", value)

    with pytest.raises(ValueError, match=f"invalid WORLD_SIZE '{value}'"):
        launched_world_size()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA machines keep the NCCL default")
def test_distributed_arguments_pick_gloo_without_cuda(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")

    assert distributed_training_arguments() == {"use_cpu": True, "ddp_backend": "gloo"}


def test_ddp_config_parses():
    config = load_config_from_file(str(CONFIGS_DIR / "ddp.yaml"))

    assert config.distributed_type == DistributedType.MULTI_GPU
    assert config.mixed_precision == "no"
    assert config.num_machines == 1


def test_deepspeed_zero2_config_parses():
    config = load_config_from_file(str(CONFIGS_DIR / "deepspeed_zero2.yaml"))
    deepspeed_file = REPOSITORY_ROOT / config.deepspeed_config["deepspeed_config_file"]
    values = json.loads(deepspeed_file.read_text(encoding="utf-8"))

    assert config.distributed_type == DistributedType.DEEPSPEED
    assert values["zero_optimization"]["stage"] == 2
    for name in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps"):
        assert values[name] == "auto", name
    assert values["bf16"]["enabled"] == "auto"
