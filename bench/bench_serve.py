"""Reply latency per reply path and peak memory of ``supportbot serve`` on the demo data.

The script prepares a demo home with ``supportbot demo --no-serve``. The first time
takes 2 to 4 minutes on 2 CPU cores, and a home that already contains the data takes
seconds. It then starts ``supportbot serve`` on a free port of 127.0.0.1 and sends a
fixed list of real questions one at a time, each in a new conversation:

- StackFAQ paraphrases: crowd-written rewordings of the 125 thread titles, drawn with a
  fixed seed. The expected source is the thread.
- English help questions that no stored answer matches, so they reach generation.
- Chinese questions about CrossWOZ attractions, built from the database names. The
  expected source is the venue's document.
- Questions outside the knowledge base (weather, trivia) that should fall back.

Latency is measured by the client around ``POST /v1/conversations/{id}/messages`` and
grouped by the reply's ``path`` and ``explanation.reason``. Peak memory is VmHWM of the
server process from /proc after the last reply. Figures are single runs.

Usage:
    SUPPORTBOT_DATA_DIR=/path/to/data python bench/bench_serve.py [--home DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_ROOT = Path("/tmp/supportbot-bench-serve")
HELP_QUESTIONS = (
    "How do I change my shipping address?",
    "My order arrived damaged, can I get a refund?",
    "I forgot my password and cannot log in. What should I do?",
    "How do I cancel my subscription?",
    "Can I return a jacket I bought last week?",
    "My package has not arrived yet. Where is it?",
    "How do I update the credit card on my account?",
    "Why was I charged twice for one order?",
)
UNRELATED_QUESTIONS = (
    ("en", "What will the weather be like in Paris tomorrow?"),
    ("en", "Who won the football World Cup in 1998?"),
    ("en", "What is the capital of Australia?"),
    ("en", "Can you give me a recipe for banana bread?"),
    ("en", "How tall is Mount Everest?"),
    ("zh-CN", "明天上海会下雨吗？"),
)
VENUE_TEMPLATES = ("{name}的门票多少钱？", "{name}的地址在哪里？", "{name}的电话是多少？")
# Server messages that mean something went wrong while the benchmark ran.
_LOG_PROBLEM_MARKERS = ("ERROR", "Traceback", "CRITICAL")


@dataclass(frozen=True)
class Question:
    """One benchmark question and the source title that a correct reply cites."""

    group: str
    language: str
    text: str
    expected_title: str | None = None


@dataclass
class Answer:
    """The outcome of one question, as the client saw it."""

    group: str
    text: str
    status: int | None
    latency_ms: float
    path: str | None = None
    reason: str | None = None
    server_total_ms: float | None = None
    best_answer_score: float | None = None
    best_passage_score: float | None = None
    cited_title: str | None = None
    is_expected_source: bool | None = None
    reply: str | None = None
    error: str | None = None
    server_rss_mib: float | None = None


def build_questions(data_dir: Path, *, paraphrases: int, venues: int, seed: int) -> list[Question]:
    """Return the benchmark questions, drawn from the public datasets with a fixed seed."""
    rng = random.Random(seed)
    threads = json.loads((data_dir / "stackfaq" / "stackExchange-FAQ.json").read_text())
    candidates = []
    for thread in threads["root"]["qapair"]:
        rephrasings = thread["rephr"] if isinstance(thread["rephr"], list) else [thread["rephr"]]
        # StackFAQ writes "*" (and once an empty string) where a paraphrase is missing.
        title = thread["question"].strip()
        candidates += [(text, title) for text in rephrasings if text and text != "*"]
    questions = [
        Question("stackfaq paraphrase", "en", " ".join(text.split()), title)
        for text, title in rng.sample(candidates, paraphrases)
    ]

    questions += [Question("help (generation)", "en", text) for text in HELP_QUESTIONS]

    attraction_path = data_dir / "crosswoz" / "database" / "attraction_db.json"
    attractions = json.loads(attraction_path.read_text())
    for number, (name, _) in enumerate(rng.sample(attractions, venues)):
        template = VENUE_TEMPLATES[number % len(VENUE_TEMPLATES)]
        questions.append(Question("crosswoz venue", "zh-CN", template.format(name=name), name))

    questions += [Question("unrelated", lang, text) for lang, text in UNRELATED_QUESTIONS]
    return questions


def prepare_home(home: Path, env: dict[str, str], timeout_s: float) -> float:
    """Run ``supportbot demo --no-serve`` into ``home`` and return its duration in seconds."""
    started = time.perf_counter()
    log_path = home.parent / "prepare.log"
    logger.info("Preparing demo home=%s log=%s", home, log_path)
    with log_path.open("w") as log:
        result = subprocess.run(
            [sys.executable, "-m", "ui.cli", "demo", "--no-serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
            check=False,
        )
    if result.returncode != 0:
        raise SystemExit(
            f"supportbot demo --no-serve failed with exit code {result.returncode}; see {log_path}"
        )
    return time.perf_counter() - started


def find_free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_health(
    client: httpx.Client,
    base_url: str,
    server: subprocess.Popen,
    timeout_s: float,
    log_path: Path,
) -> dict:
    """Poll ``/v1/health`` until it returns 200 and return its body.

    Raises:
        SystemExit: If the server exits or does not return 200 within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(
                f"supportbot serve exited with code {server.returncode} during start; "
                f"see {log_path}"
            )
        try:
            response = client.get(f"{base_url}/v1/health", timeout=5.0)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass
        time.sleep(1.0)
    raise SystemExit(
        f"supportbot serve timed out: /v1/health did not return 200 within {timeout_s:.0f} s. "
        f"See {log_path}, or raise --startup-timeout-s"
    )


def ask(client: httpx.Client, base_url: str, question: Question, timeout_s: float) -> Answer:
    """Send ``question`` in a new conversation and return what came back."""
    try:
        created = client.post(
            f"{base_url}/v1/conversations", json={"language": question.language}, timeout=30.0
        )
        created.raise_for_status()
        url = f"{base_url}/v1/conversations/{created.json()['id']}/messages"
        started = time.perf_counter()
        response = client.post(url, json={"text": question.text}, timeout=timeout_s)
        latency_ms = (time.perf_counter() - started) * 1000
    except httpx.HTTPError as error:
        return Answer(question.group, question.text, None, float("nan"), error=repr(error))
    answer = Answer(question.group, question.text, response.status_code, latency_ms)
    if response.status_code != 200:
        answer.error = response.text[:300]
        return answer

    body = response.json()
    citations = body["citations"]
    explanation = body["explanation"]
    answer.path = body["path"]
    answer.reason = explanation.get("reason")
    if explanation.get("stored_answers"):
        answer.best_answer_score = explanation["stored_answers"][0]["score"]
    if explanation.get("retrieved"):
        answer.best_passage_score = explanation["retrieved"][0]["score"]
    answer.server_total_ms = body["timings_ms"].get("total")
    answer.cited_title = citations[0]["title"] if citations else None
    answer.reply = body["text"][:200]
    if question.expected_title is not None:
        answer.is_expected_source = any(c["title"] == question.expected_title for c in citations)
    return answer


def read_memory_kib(pid: int) -> dict[str, int]:
    """Return VmHWM (peak resident set) and VmRSS of ``pid`` in KiB, read from /proc."""
    memory = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            memory[key] = int(value.split()[0])
    return memory


def summarise(answers: list[Answer]) -> dict:
    """Group latencies by path and by reason, and count paths and cited sources per group."""
    ok = [a for a in answers if a.path is not None]
    by_path = _latency_table(ok, lambda a: a.path)
    for row in by_path.values():
        row["share"] = round(row["count"] / len(ok), 3)
    groups: dict[str, dict] = {}
    for group in dict.fromkeys(a.group for a in answers):
        members = [a for a in answers if a.group == group]
        checked = [a.is_expected_source for a in members if a.is_expected_source is not None]
        groups[group] = {
            "count": len(members),
            "paths": dict(Counter(a.path or "error" for a in members)),
            "expected_source_cited": sum(checked) if checked else None,
        }
    return {
        "replies": len(ok),
        "errors": len(answers) - len(ok),
        "by_path": by_path,
        "by_reason": _latency_table(ok, lambda a: f"{a.path} / {a.reason}"),
        "by_group": groups,
    }


def _latency_table(answers: list[Answer], key) -> dict[str, dict]:
    grouped: dict[str, list[float]] = defaultdict(list)
    for answer in answers:
        grouped[key(answer)].append(answer.latency_ms)
    return {
        name: {
            "count": len(values),
            "p50_ms": round(float(np.percentile(values, 50)), 1),
            "p95_ms": round(float(np.percentile(values, 95)), 1),
        }
        for name, values in sorted(grouped.items())
    }


def print_report(result: dict) -> None:
    """Print the figures as Markdown tables."""
    summary = result["summary"]
    print(
        f"replies={summary['replies']} errors={summary['errors']} "
        f"prepare_s={result['prepare_s']:.0f} startup_s={result['startup_s']:.0f} "
        f"model_converted_at_startup={result['model_converted_at_startup']}"
    )
    load = result["machine"]
    print(
        f"load average (1, 5, 15 min) at start {_format_load(load['load_average_at_start'])}, "
        f"at end {_format_load(load['load_average_at_end'])} on {load['cpus']} CPUs"
    )

    print("\n| path | replies | share | p50 ms | p95 ms |\n| --- | ---: | ---: | ---: | ---: |")
    for path, row in summary["by_path"].items():
        print(
            f"| {path} | {row['count']} | {100 * row['share']:.0f}% | "
            f"{row['p50_ms']:.0f} | {row['p95_ms']:.0f} |"
        )

    print("\n| path / reason | replies | p50 ms | p95 ms |\n| --- | ---: | ---: | ---: |")
    for reason, row in summary["by_reason"].items():
        print(f"| {reason} | {row['count']} | {row['p50_ms']:.0f} | {row['p95_ms']:.0f} |")

    print("\n| question group | questions | paths | expected source cited |")
    print("| --- | ---: | --- | ---: |")
    for group, row in summary["by_group"].items():
        paths = ", ".join(f"{path} {count}" for path, count in sorted(row["paths"].items()))
        cited = "-" if row["expected_source_cited"] is None else row["expected_source_cited"]
        print(f"| {group} | {row['count']} | {paths} | {cited} |")

    memory = result["memory_mib"]
    print(
        f"\nserver memory: VmRSS after start {memory['rss_after_start']:.0f} MiB, "
        f"after the warm-up reply {memory['rss_after_warm_up']:.0f} MiB, "
        f"peak (VmHWM) {memory['peak']:.0f} MiB, VmRSS at end {memory['rss_at_end']:.0f} MiB"
    )

    problems = result["server_log_problems"]
    print(f"server log lines with ERROR, CRITICAL or Traceback: {len(problems)}")
    for line in problems[:10]:
        print(f"    {line}")


def _format_load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{value:.1f}" for value in load)


def run(args: argparse.Namespace, data_dir: Path) -> dict:
    """Prepare the home, serve, ask every question and return the figures."""
    questions = build_questions(
        data_dir, paraphrases=args.paraphrases, venues=args.venues, seed=args.seed
    )
    home = args.home.resolve()
    home.parent.mkdir(parents=True, exist_ok=True)
    # Without SUPPORTBOT_DATABASE_URL the server uses the SQLite file the demo prepared.
    env = {key: value for key, value in os.environ.items() if key != "SUPPORTBOT_DATABASE_URL"}
    env.update(SUPPORTBOT_HOME=str(home), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")

    had_home = (home / "index").is_dir()
    load_at_start = os.getloadavg()
    prepare_s = prepare_home(home, env, args.prepare_timeout_s)
    # The first start of a server converts the packaged dialog model, which raises its memory.
    had_converted_model = any((home / "models").glob("*/supportbot-conversion.json"))
    log_path = home.parent / "serve.log"
    served = serve_and_ask(questions, env, log_path, args)

    problems = [
        line.rstrip()
        for line in log_path.read_text(errors="replace").splitlines()
        if any(marker in line for marker in _LOG_PROBLEM_MARKERS)
    ]
    memory = served["memory_kib"]
    return {
        "home": str(home),
        "home_existed": had_home,
        "prepare_s": round(prepare_s, 1),
        "startup_s": round(served["startup_s"], 1),
        "model_converted_at_startup": not had_converted_model,
        "health": served["health"],
        "questions": len(questions),
        "seed": args.seed,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": os.getloadavg(),
        },
        "memory_mib": {
            "rss_after_start": round(served["rss_after_start_kib"] / 1024, 1),
            "rss_after_warm_up": round(served["rss_after_warm_up_kib"] / 1024, 1),
            "peak": round(memory["VmHWM"] / 1024, 1),
            "rss_at_end": round(memory["VmRSS"] / 1024, 1),
        },
        "summary": summarise(served["answers"]),
        "server_log": str(log_path),
        "server_log_problems": problems[:50],
        "answers": [asdict(answer) for answer in served["answers"]],
    }


def serve_and_ask(
    questions: list[Question], env: dict[str, str], log_path: Path, args: argparse.Namespace
) -> dict:
    """Start ``supportbot serve``, ask ``questions`` one at a time, read memory, stop it."""
    port = find_free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "ui.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("w") as log, httpx.Client() as client:
        started = time.perf_counter()
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            health = wait_for_health(client, base_url, server, args.startup_timeout_s, log_path)
            startup_s = time.perf_counter() - started
            rss_after_start_kib = read_memory_kib(server.pid)["VmRSS"]
            logger.info("Server ready port=%d startup_s=%.1f", port, startup_s)
            # One untimed reply first, so that lazy initialisation is not in the figures.
            warm_up = Question("warm-up", "en", HELP_QUESTIONS[0])
            ask(client, base_url, warm_up, args.request_timeout_s)
            rss_after_warm_up_kib = read_memory_kib(server.pid)["VmRSS"]
            answers = []
            for number, question in enumerate(questions, start=1):
                answer = ask(client, base_url, question, args.request_timeout_s)
                answer.server_rss_mib = round(read_memory_kib(server.pid)["VmRSS"] / 1024, 1)
                answers.append(answer)
                logger.info(
                    "Question %d/%d group=%s path=%s latency_ms=%.0f",
                    number,
                    len(questions),
                    question.group,
                    answer.path,
                    answer.latency_ms,
                )
            memory_kib = read_memory_kib(server.pid)
        finally:
            _stop(server)
    return {
        "health": health,
        "startup_s": startup_s,
        "rss_after_start_kib": rss_after_start_kib,
        "rss_after_warm_up_kib": rss_after_warm_up_kib,
        "answers": answers,
        "memory_kib": memory_kib,
    }


def _stop(server: subprocess.Popen) -> None:
    """Stop the server with SIGINT (uvicorn's graceful stop), then SIGKILL after 30 s."""
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        logger.warning(
            "Server pid=%d did not stop within 30 s of SIGINT, sending SIGKILL", server.pid
        )
        server.kill()
        server.wait(timeout=10)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home",
        type=Path,
        default=DEFAULT_ROOT / "home",
        help="Demo home (SUPPORTBOT_HOME); reused when it exists.",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_ROOT / "bench_serve.json",
        help="JSON file the figures and every reply are written to.",
    )
    parser.add_argument("--paraphrases", type=int, default=20, help="StackFAQ paraphrases to ask.")
    parser.add_argument("--venues", type=int, default=10, help="CrossWOZ attractions to ask about.")
    parser.add_argument("--seed", type=int, default=7, help="Seed for drawing questions.")
    parser.add_argument(
        "--request-timeout-s", type=float, default=120.0, help="Timeout of one reply, in seconds."
    )
    parser.add_argument(
        "--startup-timeout-s",
        type=float,
        default=300.0,
        help="How long to wait for /v1/health after starting the server.",
    )
    parser.add_argument(
        "--prepare-timeout-s",
        type=float,
        default=1200.0,
        help="Timeout of `supportbot demo --no-serve`, in seconds.",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    # SIGTERM (for example from run_all.py on a timeout) unwinds like an exception, so
    # the server started here is stopped as well.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    data_dir = os.environ.get("SUPPORTBOT_DATA_DIR")
    if not data_dir:
        print("Set SUPPORTBOT_DATA_DIR to the folder of the public datasets", file=sys.stderr)
        return 2
    if not 1 <= args.paraphrases <= 200 or not 1 <= args.venues <= 100:
        print(
            f"--paraphrases must be between 1 and 200 and --venues between 1 and 100, got "
            f"{args.paraphrases} and {args.venues}",
            file=sys.stderr,
        )
        return 2

    result = run(args, Path(data_dir))

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print_report(result)
    print(f"\nfigures and replies written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
