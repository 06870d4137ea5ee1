"""Warm re-run with everything cached vs a cold run (target <= 5% of cold time).

Two paths that re-run an identical evaluation:

1. ``qeval sweep`` through its Python API: :func:`qeval.sweep.run_sweep` with one
   :class:`~qeval.config.SweepConfig`, run twice (fresh run ids, same ``out_dir``).
2. The pytest plugin (``pytest --qeval <suite> --qeval-model ...``), which stores
   finished cells in :class:`qeval.cache.CellCache`: run twice in subprocesses over
   the same project folder, so the second run finds every cell in the cache.

The model is qeval's fake (``token_delay_s`` per token in the timed pass, instant
accuracy pass) so the numbers measure qeval's own work: a slow real model only makes
the cold run longer and the ratio smaller. Prints each wall time and warm / cold.

    .venv/bin/python benchmarks/warm_rerun.py
    .venv/bin/python benchmarks/warm_rerun.py --precisions fp32,int8,int4 --token-delay-ms 2
    .venv/bin/python benchmarks/warm_rerun.py --model smollm2-135m --suite suites/arithmetic --limit 16

With ``--model`` the plugin path runs that real model (``--suite``, ``--limit``); the
fake-model sweep path is skipped. A real model's cold run is what a CI job pays
without the cache, so its ratio is the one the target is about.
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
    parser.add_argument("--precisions", default="fp32,int8,int4")
    parser.add_argument("--token-delay-ms", type=float, default=2.0)
    parser.add_argument("--model", default=None, help="a real model for the plugin path (e.g. smollm2-135m)")
    parser.add_argument("--suite", type=Path, default=MINI)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    precisions = tuple(args.precisions.split(","))
    delay = args.token_delay_ms / 1000.0
    sys.path.insert(0, str(ROOT))

    if args.model:
        with tempfile.TemporaryDirectory() as tmp:
            cold, warm, out = plugin_path(precisions, delay, Path(tmp), args.model, args.suite.resolve(), args.limit)
            print(f"pytest --qeval ({args.model}, {args.suite.name}, limit {args.limit}, cell cache): cold {cold:.2f} s, "
                  f"warm {warm:.2f} s -> {warm / cold:.1%} of cold "
                  f"({'MET' if warm / cold <= TARGET else 'MISSED'}, target <= {TARGET:.0%})")
            print("warm run's last lines:\n  " + "\n  ".join(out.strip().splitlines()[-3:]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        cold, warm = sweep_path(precisions, delay, Path(tmp) / "reports")
        print(f"run_sweep (fake model, {len(precisions)} precisions x mini): cold {cold:.2f} s, "
              f"identical re-run {warm:.2f} s -> {warm / cold:.1%} of cold "
              f"({'MET' if warm / cold <= TARGET else 'MISSED'}, target <= {TARGET:.0%})")
        project = Path(tmp) / "project"
        project.mkdir()
        cold, warm, out = plugin_path(precisions, delay, project)
        # both runs pay interpreter + pytest + plugin start-up; the cache can only save the rest
        print(f"pytest --qeval (fake model, cell cache): cold {cold:.2f} s, warm {warm:.2f} s -> "
              f"{warm / cold:.1%} of cold ({'MET' if warm / cold <= TARGET else 'MISSED'}, target <= {TARGET:.0%})")
        print("warm run's last lines:\n  " + "\n  ".join(out.strip().splitlines()[-3:]))


if __name__ == "__main__":
    main()
