"""Indexing throughput of KnowledgeIndexer against plain SentenceTransformer.encode.

Writes the StackFAQ threads (title and answers) and the ABCD agent guidelines as
Markdown files to a temporary folder, indexes them into a fresh SQLite database, then
encodes the same chunk texts with SentenceTransformer.encode at the same batch size.
The difference is the indexer's own cost: reading, chunking, the database transaction
and the FAISS file. A second, unchanged run measures the incremental check.

Usage:
    SUPPORTBOT_DATA_DIR=/path/to/data python bench/bench_index.py [--batch-size 64]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sentence_transformers import SentenceTransformer  # noqa: E402
from sqlalchemy import select  # noqa: E402

from retrieval.chunker import chunk_embedding_text  # noqa: E402
from retrieval.embedder import SentenceTransformerEmbedder, resolve_packaged_model  # noqa: E402
from retrieval.indexer import KnowledgeIndexer  # noqa: E402
from storage.db import create_db_engine, create_session_factory, upgrade_schema  # noqa: E402
from storage.models import Chunk  # noqa: E402

MODEL = "packaged:all-MiniLM-L6-v2"


def write_stackfaq(data_dir: Path, target: Path) -> int:
    threads = json.loads((data_dir / "stackfaq" / "stackExchange-FAQ.json").read_text())
    for number, thread in enumerate(threads["root"]["qapair"]):
        answers = thread["answer"] if isinstance(thread["answer"], list) else [thread["answer"]]
        body = "\n\n".join(f"## Answer {i + 1}\n\n{answer}" for i, answer in enumerate(answers))
        (target / f"stackfaq-{number:03d}.md").write_text(f"# {thread['question']}\n\n{body}\n")
    return len(threads["root"]["qapair"])


def write_abcd_guidelines(data_dir: Path, target: Path) -> int:
    flows = json.loads((data_dir / "abcd" / "guidelines.json").read_text())
    for number, (flow, content) in enumerate(flows.items()):
        lines = [f"# {flow}", "", content["description"], ""]
        for subflow, details in content["subflows"].items():
            lines += [f"## {subflow}", ""] + details.get("instructions", []) + [""]
            for action in details.get("actions", []):
                lines.append(f"- {action['text']}")
                lines += [f"  - {subtext}" for subtext in action.get("subtext", [])]
            lines.append("")
        (target / f"abcd-{number:02d}.md").write_text("\n".join(lines))
    return len(flows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64, help="Texts per encode call.")
    parser.add_argument("--device", default="cpu", help="Torch device, e.g. cpu or cuda.")
    args = parser.parse_args()
    data_dir = os.environ.get("SUPPORTBOT_DATA_DIR")
    if not data_dir:
        print("Set SUPPORTBOT_DATA_DIR to the folder of the public datasets", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as workdir:
        work = Path(workdir)
        knowledge = work / "knowledge"
        knowledge.mkdir()
        files = write_stackfaq(Path(data_dir), knowledge)
        files += write_abcd_guidelines(Path(data_dir), knowledge)
        engine = create_db_engine(f"sqlite:///{work / 'bench.db'}")
        upgrade_schema(engine)
        session_factory = create_session_factory(engine)
        embedder = SentenceTransformerEmbedder(
            MODEL, batch_size=args.batch_size, device=args.device
        )
        indexer = KnowledgeIndexer(session_factory, embedder, work / "index")

        report = indexer.index_paths([knowledge])
        rerun = indexer.index_paths([knowledge])
        with session_factory() as session:
            texts = [
                chunk_embedding_text(title=c.title, question=c.question, text=c.text)
                for c in session.scalars(select(Chunk).order_by(Chunk.id))
            ]
        model = SentenceTransformer(resolve_packaged_model(MODEL), device=args.device)
        started = time.perf_counter()
        model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
        encode_s = time.perf_counter() - started
        engine.dispose()

    chunks = report.chunks_embedded
    print(f"files={files} chunks={chunks} mean_chars={sum(map(len, texts)) / len(texts):.0f}")
    print("| step | seconds | chunks/s |")
    print("| --- | ---: | ---: |")
    index_rate = chunks / report.elapsed_s
    print(f"| KnowledgeIndexer.index_paths | {report.elapsed_s:.1f} | {index_rate:.1f} |")
    print(f"| SentenceTransformer.encode | {encode_s:.1f} | {chunks / encode_s:.1f} |")
    print(f"| re-run, nothing changed | {rerun.elapsed_s:.2f} | - |")
    print(f"indexer overhead: {100 * (report.elapsed_s / encode_s - 1):.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
