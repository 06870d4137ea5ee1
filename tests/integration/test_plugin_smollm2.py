"""`pytest --qeval` end to end on the bundled SmolLM2-135M: the command from the README's CI example."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _pytest(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "pytest", "--qeval", "suites/arithmetic", "--qeval-model", "smollm2-135m",
        "--qeval-precisions", "bf16,int8", "--qeval-limit", "8",
        "--qeval-latency-samples", "2", "--qeval-warmup", "1",
        "--qeval-report", str(tmp_path / "reports"), "-o", f"cache_dir={tmp_path / 'cache'}", "-p", "no:hypothesispytest",
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)


@pytest.mark.slow
def test_pytest_qeval_on_the_bundled_model(tmp_path):
    first = _pytest(tmp_path, "--qeval-save-baseline", str(tmp_path / "base.json"))
    out = first.stdout
    # the verdicts depend on the model's answers; running, reporting and exiting 0 or 1 do not
    assert first.returncode in (0, 1), out + first.stderr
    assert "Traceback" not in out + first.stderr
    assert "qeval: evaluating smollm2-135m at bf16 on arithmetic (8 cases)" in out
    assert "qeval: SLO verdicts" in out
    (run_dir,) = list((tmp_path / "reports").iterdir())
    verdicts = json.loads((run_dir / "slo.json").read_text())["verdicts"]
    assert [(v["precision"], v["slo"]) for v in verdicts] == [("bf16", "accuracy>=0.2"), ("int8", "accuracy>=0.2")]
    assert all(v["outcome"] in ("pass", "fail", "inconclusive") and v["n"] == 8 for v in verdicts)
    assert (run_dir / "slo.md").is_file() and (run_dir / "results.json").is_file()

    # Second run: nothing that matters changed, so both cells come from the cache, and a
    # baseline comparison against the first run finds no change at all.
    second = _pytest(tmp_path, "--qeval-baseline", str(tmp_path / "base.json"),
                     "--qeval-slo", "accuracy_drop_vs(baseline) <= 0.5")
    assert "qeval: evaluating" not in second.stdout
    assert "2 cell(s) reused from the cache" in second.stdout
    assert "no-regression-vs-baseline PASSED" in second.stdout or "no regression" in second.stdout
    assert "accuracy_drop_vs(baseline)<=0.5" in second.stdout
