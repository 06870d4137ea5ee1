"""Warm re-run with everything cached vs a cold run (target <= 5% of cold time).

The path the target is about: the pytest plugin (``pytest --qeval <suite> --qeval-model M``),
which stores finished cells in :class:`qeval.cache.CellCache`. It runs twice in subprocesses
over the same project folder with a real model, so the second run finds every cell in the
cache; a real model's cold run is what a CI job pays without the cache.

    .venv/bin/python benchmarks/warm_rerun.py                     # smollm2-135m, fp32, arithmetic, 16 cases
    .venv/bin/python benchmarks/warm_rerun.py --precisions fp32,int8,int4

With ``--fake`` it measures qeval's own floor instead, on its fake model (``token_delay_s``
per token in the timed pass, instant accuracy pass): ``run_sweep`` twice in one process
(a sweep has no cell cache: the second run re-measures, minus the imports), and the plugin
path. Both runs there are mostly interpreter + pytest start-up, so those ratios are not
held against the target; the profile shows where a warm sweep's time goes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "tests" / "data" / "suites" / "mini"
TARGET = 0.05

FAKE_MODEL = textwrap.dedent(
    """
    import re
    from qeval.models import FakeSource

    def _right(prompt, precision):
        a, b = map(int, re.findall(r"What is (\\d+) \\+ (\\d+)\\?", prompt)[0])
        return f"The answer is {a + b}."

    fake = FakeSource(responder=_right, token_delay_s={delay})
    """
)


def sweep_path(precisions: tuple[str, ...], delay_s: float, out: Path) -> tuple[float, float]:
    import cProfile
    import pstats

    from qeval.config import SweepConfig
    from qeval.models import FakeSource
    from qeval.sweep import run_sweep
    from tests.fakes import right_except_int4_on_odd

    times = []
    profile = cProfile.Profile()
    for run_id in ("cold", "warm"):
        config = SweepConfig(model="fake", precisions=precisions, suites=(str(MINI),), device="cpu",
                             latency_samples=8, warmup_requests=2, out_dir=str(out), run_id=run_id)
        start = time.perf_counter()
        if run_id == "warm":
            profile.enable()
        run_sweep(config, source=FakeSource(responder=right_except_int4_on_odd, token_delay_s=delay_s))
        profile.disable()
        times.append(time.perf_counter() - start)
    print("where the warm sweep's time goes (cProfile, qeval frames, top 12 cumulative; profiled run is slower):")
    pstats.Stats(profile).sort_stats("cumulative").print_stats("qeval", 12)
    return times[0], times[1]


def plugin_path(precisions: tuple[str, ...], delay_s: float, project: Path, model: str | None = None,
                suite: Path = MINI, limit: int | None = None) -> tuple[float, float, str]:
    (project / "fakemodel.py").write_text(FAKE_MODEL.replace("{delay}", repr(delay_s)))
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'src'}")
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:hypothesispytest", "--qeval", str(suite),
            "--qeval-model", model or "fakemodel:fake", "--qeval-precisions", ",".join(precisions),
            "--qeval-latency-samples", "8", "--qeval-warmup", "2", "--qeval-device", "cpu",
            *(["--qeval-limit", str(limit)] if limit else []),
            # pytest's cache (which holds the cell cache) lives under the rootdir, which a suite
            # outside the project moves elsewhere: pin it here so the first run is really cold
            "-o", f"cache_dir={project / '.pytest_cache'}"]
    times, out = [], ""
    for _ in range(2):
        start = time.perf_counter()
        proc = subprocess.run(args, check=False, cwd=project, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        out = proc.stdout
        if proc.returncode not in (0, 1):
            raise SystemExit(f"pytest failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return times[0], times[1], out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="the real model of the plugin path")
    parser.add_argument("--precisions", default="fp32")
    parser.add_argument("--suite", type=Path, default=ROOT / "suites" / "arithmetic")
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--fake", action="store_true", help="qeval's own floor on the fake model instead")
    parser.add_argument("--token-delay-ms", type=float, default=2.0, help="the fake model's per-token delay")
    args = parser.parse_args()
    precisions = tuple(args.precisions.split(","))
    sys.path.insert(0, str(ROOT))

    if not args.fake:
        with tempfile.TemporaryDirectory() as tmp:
            cold, warm, out = plugin_path(precisions, 0.0, Path(tmp), args.model, args.suite.resolve(), args.limit)
            print(f"pytest --qeval ({args.model}, {','.join(precisions)}, {args.suite.name}, limit {args.limit}, "
                  f"cell cache): cold {cold:.2f} s, warm {warm:.2f} s -> {warm / cold:.1%} of cold "
                  f"({'MET' if warm / cold <= TARGET else 'MISSED'}, target <= {TARGET:.0%})")
            print("warm run's last lines:\n  " + "\n  ".join(out.strip().splitlines()[-3:]))
        return
    delay = args.token_delay_ms / 1000.0
    with tempfile.TemporaryDirectory() as tmp:
        cold, warm = sweep_path(precisions, delay, Path(tmp) / "reports")
        print(f"run_sweep (fake model, {len(precisions)} precision(s) x mini): cold {cold:.2f} s, "
              f"identical re-run {warm:.2f} s -> {warm / cold:.1%} of cold (no cell cache: re-measured)")
        project = Path(tmp) / "project"
        project.mkdir()
        cold, warm, out = plugin_path(precisions, delay, project)
        print(f"pytest --qeval (fake model, cell cache): cold {cold:.2f} s, warm {warm:.2f} s -> {warm / cold:.1%} "
              "of cold (both mostly start-up: the floor, not the target)")
        print("warm run's last lines:\n  " + "\n  ".join(out.strip().splitlines()[-3:]))


if __name__ == "__main__":
    main()
