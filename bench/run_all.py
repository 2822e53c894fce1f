"""Run every ``bench/bench_*.py`` script in turn, as ``make bench`` does.

Each script runs in its own process with the same Python, the repository root as working
directory and the caller's environment (so ``SUPPORTBOT_DATA_DIR`` reaches it), with
``HF_HUB_OFFLINE=1`` added so that no script downloads from a model hub. A script that
fails or runs past its timeout is reported and the next one still runs. The exit status
is 1 when any script failed, else 0.

Usage:
    SUPPORTBOT_DATA_DIR=/path/to/data python bench/run_all.py [--timeout-s 1800] [NAME ...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPOSITORY_ROOT = BENCH_DIR.parent
# NOTE: bench_import.py takes the datasets folder as --data-dir instead of reading
# SUPPORTBOT_DATA_DIR, so it gets the variable's value as that option.
DATA_DIR_OPTIONS = {"bench_import": "--data-dir"}
# Seconds a timed-out script and the processes it started get to exit after SIGTERM.
STOP_GRACE_S = 10.0


def find_scripts(names: list[str]) -> list[Path]:
    """Return the benchmark scripts to run: all of them, or those named in ``names``."""
    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    if not names:
        return scripts
    by_name = {script.stem: script for script in scripts}
    unknown = [name for name in names if name.removesuffix(".py") not in by_name]
    if unknown:
        raise SystemExit(
            f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(by_name)}"
        )
    return [by_name[name.removesuffix(".py")] for name in names]


def run_script(script: Path, timeout_s: float, env: dict[str, str]) -> tuple[str, float]:
    """Run one script with its output on this terminal, and return its outcome and seconds."""
    command = [sys.executable, str(script)]
    if script.stem in DATA_DIR_OPTIONS and env.get("SUPPORTBOT_DATA_DIR"):
        command += [DATA_DIR_OPTIONS[script.stem], env["SUPPORTBOT_DATA_DIR"]]

    started = time.perf_counter()
    # A session of its own puts the script and anything it starts (bench_serve.py starts a
    # server) in one process group, so that a timeout stops all of them.
    process = subprocess.Popen(command, cwd=REPOSITORY_ROOT, env=env, start_new_session=True)
    try:
        returncode = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _stop_group(process)
        return f"timed out after {timeout_s:.0f} s", time.perf_counter() - started
    except KeyboardInterrupt:
        _stop_group(process)
        raise
    outcome = "ok" if returncode == 0 else f"failed (exit {returncode})"
    return outcome, time.perf_counter() - started


def _stop_group(process: subprocess.Popen) -> None:
    """Send SIGTERM to the script's process group, then SIGKILL to what is left after 10 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and _is_group_alive(process):
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _is_group_alive(process: subprocess.Popen) -> bool:
    # Reap the script first: an unreaped script still counts as a member of its group.
    process.poll()
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", help="Scripts to run, e.g. bench_index; default: every bench_*.py."
    )
    parser.add_argument(
        "--timeout-s", type=float, default=1800.0, help="Time limit of each script, in seconds."
    )
    args = parser.parse_args()
    scripts = find_scripts(args.names)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if not env.get("SUPPORTBOT_DATA_DIR"):
        print(
            "warning: SUPPORTBOT_DATA_DIR is unset; benchmarks that read public data will stop "
            "with a message. Set it to the folder of the public datasets.",
            file=sys.stderr,
        )

    outcomes = []
    for script in scripts:
        print(f"\n=== {script.name}", flush=True)
        outcome, seconds = run_script(script, args.timeout_s, env)
        outcomes.append((script.name, outcome, seconds))

    print("\n| benchmark | outcome | seconds |\n| --- | --- | ---: |")
    for name, outcome, seconds in outcomes:
        print(f"| {name} | {outcome} | {seconds:.0f} |")
    return 0 if all(outcome == "ok" for _, outcome, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
