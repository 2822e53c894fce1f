"""Run one DDP training step of a tiny Llama on packed rows. Tests start it with torchrun.

Usage:
    python -m torch.distributed.run --nproc_per_node 2 accelerate_step.py MODEL_DIR OUT_DIR

Every process loads the same tiny model folder, gets its own shard of the packed rows
through ``Accelerator.prepare``, takes one optimizer step, and saves its weights to
``OUT_DIR/weights-rank<N>.safetensors``. It also writes the token ids it trained on to
``OUT_DIR/batch-rank<N>.json``, so the test can check that the processes saw different
rows. The main process saves the weights before the step to ``OUT_DIR/initial.safetensors``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from finetune.packing import pack_examples
from finetune.tokenization import tokenize_examples
from finetune.trainer import PackedRowDataset, collate_packed_row

CONVERSATIONS = [
    [
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
    ]
    for question, answer in [
        ("where is my order", "it ships today"),
        ("can i pay by card", "yes you can pay by card"),
        ("where is the refund", "the refund takes five days"),
        ("is my order shipped", "yes it ships today"),
    ]
]


def _save_weights(model: torch.nn.Module, path: Path) -> None:
    state = model.state_dict()
    tensors = {name: tensor.detach().clone().contiguous() for name, tensor in state.items()}
    save_file(tensors, path)


def main(model_dir: Path, out_dir: Path) -> None:
    accelerator = Accelerator(cpu=True)
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.train()
    if accelerator.is_main_process:
        _save_weights(model, out_dir / "initial.safetensors")

    # One example per row, so each of the two processes trains on different rows.
    examples = tokenize_examples(CONVERSATIONS, tokenizer, max_seq_len=32).examples
    rows = pack_examples(examples, max_tokens=32)
    loader = torch.utils.data.DataLoader(
        PackedRowDataset(rows), batch_size=1, shuffle=False, collate_fn=collate_packed_row
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    batch = next(iter(loader))
    loss = model(**batch).loss
    accelerator.backward(loss)
    optimizer.step()
    optimizer.zero_grad()

    rank = accelerator.process_index
    _save_weights(accelerator.unwrap_model(model), out_dir / f"weights-rank{rank}.safetensors")
    record = {
        "world_size": accelerator.num_processes,
        "distributed_type": str(accelerator.distributed_type),
        "input_ids": batch["input_ids"].tolist(),
        "loss": loss.item(),
    }
    (out_dir / f"batch-rank{rank}.json").write_text(json.dumps(record), encoding="utf-8")
    accelerator.wait_for_everyone()
    accelerator.end_training()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
