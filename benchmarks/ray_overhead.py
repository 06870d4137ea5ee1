"""``qeval sweep --executor ray`` against the local executor: wall time of the whole command, same
cells, runs interleaved (local, ray, local, ray, ...) so that drift in the machine's load falls on
both. Each Ray run starts (and stops) its own local Ray, as ``--ray-address auto`` does on a machine
without a cluster. Checks that every run gave the same completions, and prints the ratio.

    .venv/bin/python benchmarks/ray_overhead.py                       # smollm2-135m, fp32,int8, arithmetic, 10 cases
    .venv/bin/python benchmarks/ray_overhead.py --rounds 3 --ray-args "--ray-resources num_cpus=2"

Measured (docs/ray.md): 63.1 s local vs 71.7 s on Ray with 2 CPUs per task (one task at a time),
70.1 s with 1 CPU per task (both at once), 2-core machine, identical completions in every run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _sweep(out: Path, args: list[str]) -> tuple[float, list[tuple[str, str, str]]]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "qeval.cli", "sweep", *args, "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"qeval sweep {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    (samples,) = out.glob("*/samples.jsonl")
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    return took, [(r.get("precision"), r.get("case_id"), r.get("completion")) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--precisions", default="fp32,int8")
    parser.add_argument("--suites", default="suites/arithmetic")
    parser.add_argument("--limit", default="10")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ray-args", default="", help="more flags for the Ray runs, e.g. '--ray-resources num_cpus=2'")
    a = parser.parse_args()
    base = ["--model", a.model, "--precisions", a.precisions, "--suites", a.suites, "--limit", a.limit]
    modes = {"local": base, "ray": [*base, "--executor", "ray", *shlex.split(a.ray_args)]}
    walls: dict[str, list[float]] = {m: [] for m in modes}
    first = None
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(a.rounds):
            for mode, args in modes.items():
                took, completions = _sweep(Path(tmp) / f"{mode}-{round_}", args)
                first = first or completions
                same = "same completions" if completions == first else "DIFFERENT completions"
                walls[mode].append(took)
                print(f"round {round_ + 1} {mode:5s} {took:6.1f} s  ({same})", flush=True)
    local, ray = statistics.mean(walls["local"]), statistics.mean(walls["ray"])
    print(f"mean: local {local:.1f} s, ray {ray:.1f} s: ray/local = {ray / local:.2f} (+{ray - local:.1f} s)")


if __name__ == "__main__":
    main()
