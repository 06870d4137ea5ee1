"""Does a latency ratio between two targets survive a neighbour that starts halfway through?

Runs the same sweep (the bundled SmolLM2, two targets, one suite) four times, side by side in
one process: {quiet, a CPU hog started when the second target begins} x {paired (ABBA with the
first target, the default), unpaired (``pair_latency=False``: each target timed on its own, one
after the other)}. Prints, per run, the second target's TTFT p50 and TPOT p50 ratio against
the first with its 95% interval, the background load each pass recorded, and at the end the
quiet/hog ratio of each. Unpaired ratios cannot agree (the second target is timed while the hog
runs, the first before it started). Paired ones agree as far as pairing can make them: measured
on 2 cores (fp32 vs int8, 24 requests), TTFT p50 ratio 3.76 [3.68, 3.84] quiet, 3.33 [2.09, 4.09]
paired under the hog, 13.3 [10.8, 17.3] unpaired; TPOT 1.00 [0.99, 1.01], 2.04 [1.85, 2.30] paired,
5.90 [4.64, 7.64] unpaired. What is left of the TPOT shift is contention slowing int8's many
small kernels more than fp32's at two intra-op threads (a kernel waits for its descheduled
thread): those passes are marked busy, and no gate, comparison or recommendation takes them as
evidence. At one thread (``--threads 1``, as ``OMP_NUM_THREADS=1`` gives a sweep) the paired
ratios held: TTFT 4.89 [4.69, 5.09] quiet, 5.03 [4.75, 5.29] hog; TPOT 1.85 [1.76, 1.93], 1.78
[1.73, 1.87] (again: 4.98 -> 5.11, 1.85 -> 1.87; at two threads the same day TPOT went 1.28 ->
1.91, intervals apart); so a busy pass's paired ratio is kept as evidence when both sides ran at
one thread.

    .venv/bin/python benchmarks/noise.py                       # fp32 vs int8, arithmetic, 24 timed requests
    .venv/bin/python benchmarks/noise.py --only paired --threads 1   # the one-thread pair
    .venv/bin/python benchmarks/noise.py --targets a=smollm2-135m@fp32,b=smollm2-135m@fp32  # ratios ~1
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class _HogAtSecond:
    """A reporter that starts ``hogs`` busy-looping processes when the second target begins."""

    def __init__(self, second: str, hogs: int) -> None:
        self.second, self.hogs = second, hogs
        self.procs: list[subprocess.Popen] = []

    def task(self, description: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, text: str) -> None:
        if self.hogs and not self.procs and text.startswith(f"[bold]{self.second}[/]"):
            self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.hogs)]

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        self.procs = []


@dataclass(frozen=True)
class Outcome:
    label: str
    ttft: tuple[float | None, tuple[float, float] | None, str]
    tpot: tuple[float | None, tuple[float, float] | None, str]
    busy: tuple[str, ...]


def run(label: str, targets: list[str], suite: str, samples: int, paired: bool, hogs: int) -> Outcome:
    from qeval.config import SweepConfig
    from qeval.gates import parse_slo
    from qeval.measure import for_slo
    from qeval.sweep import run_sweep
    from qeval.targets import parse_target

    specs = tuple(parse_target(t) for t in targets)
    reporter = _HogAtSecond(specs[1].name, hogs)
    with tempfile.TemporaryDirectory() as out:
        config = SweepConfig(model=None, precisions=(), suites=(suite,), device="cpu", limit=8,
                             latency_samples=samples, warmup_requests=2, out_dir=out, targets=specs,
                             pair_latency=paired)
        try:
            record, _ = run_sweep(config, reporter=reporter)
        finally:
            reporter.stop()
    first, second = record.cells
    got = []
    for kind in ("ttft", "tpot"):
        m = for_slo(parse_slo(f"p50_{kind}_ratio_vs({first.precision}) <= 1000"), second, first)
        got.append((m.value, m.ci, "paired" if "ABBA" in m.method else "unpaired"))
    busy = tuple(
        f"{c.precision}: others {c.latency.background.other_share:.0%}{' BUSY' if c.latency.background.busy else ''}"
        for c in record.cells if c.latency and c.latency.background
    )
    return Outcome(label, got[0], got[1], busy)


def _fmt(x: tuple[float | None, tuple[float, float] | None, str]) -> str:
    value, ci, how = x
    if value is None:
        return "n/a"
    span = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
    return f"{value:.2f}{span} ({how})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="fp32,int8", help="two precisions of --model, or NAME=SPEC targets")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--suite", default=str(REPO / "suites" / "arithmetic"))
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--only", choices=("paired", "unpaired"), default=None, help="run only these two of the four")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads for every run (default: torch's, one per core)")
    args = parser.parse_args()
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    targets = [t if "=" in t else f"{t}={args.model}@{t}" for t in args.targets.split(",")]
    names = [t.split("=", 1)[0] for t in targets]
    print(f"targets {targets}; suite {args.suite}; {args.samples} timed requests; hog: {args.hogs} busy loops "
          f"started when {names[1]} begins; {os.cpu_count()} CPUs; "
          f"{args.threads or 'default'} intra-op threads")
    results = []
    for paired in (True, False):
        if args.only is not None and paired != (args.only == "paired"):
            continue
        for hogs in (0, args.hogs):
            label = f"{'paired' if paired else 'unpaired'} / {'hog' if hogs else 'quiet'}"
            out = run(label, targets, args.suite, args.samples, paired, hogs)
            results.append(out)
            print(f"{label:18s} TTFT p50 ratio {_fmt(out.ttft):34s} TPOT p50 ratio {_fmt(out.tpot):34s} "
                  f"{'; '.join(out.busy)}", flush=True)
    print()
    for how in ("paired", "unpaired"):
        if args.only is not None and how != args.only:
            continue
        quiet, hog = (r for r in results if r.label.startswith(how))
        for kind, q, h in (("TTFT", quiet.ttft, hog.ttft), ("TPOT", quiet.tpot, hog.tpot)):
            if q[0] and h[0]:
                overlap = bool(q[1] and h[1] and q[1][0] <= h[1][1] and h[1][0] <= q[1][1])
                print(f"{how:8s} {kind} p50 ratio, hog / quiet: {h[0] / q[0]:.2f}  "
                      f"(intervals {'overlap' if overlap else 'do NOT overlap'})")


if __name__ == "__main__":
    main()
