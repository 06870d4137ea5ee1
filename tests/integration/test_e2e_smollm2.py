"""`qeval sweep` end to end on the bundled SmolLM2-135M, as a user runs it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_sweep_on_the_bundled_model(tmp_path):
    exe = Path(sys.executable).parent / "qeval"
    proc = subprocess.run(
        [str(exe), "sweep", "--model", "smollm2-135m", "--precisions", "fp32,int8,nf8",
         "--suites", "suites/arithmetic", "--limit", "4", "--latency-samples", "2", "--warmup", "1",
         "--device", "cpu", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )
    # nf8 is a typo on purpose: the whole run must refuse before loading anything
    assert proc.returncode == 2 and "Did you mean 'nf4'" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [str(exe), "sweep", "--model", "smollm2-135m", "--precisions", "fp32,int8",
         "--suites", "suites/arithmetic", "--limit", "4", "--latency-samples", "2", "--warmup", "1",
         "--device", "cpu", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    (run_dir,) = list(tmp_path.iterdir())
    data = json.loads((run_dir / "results.json").read_text())
    assert "Q4_1" in data["model"]["source_precision"]
    assert data["model"]["parameters"] == 134_515_008
    cells = {c["precision"]: c for c in data["cells"]}
    for name in ("fp32", "int8"):
        cell = cells[name]
        assert cell["status"] == "ok" and cell["n"] == 4
        assert cell["latency"]["ttft_ms"]["n"] == 2
    # fp32 holds 134.5 M params x 4 bytes (plus the rotary buffers, a few hundred bytes);
    # int8 weight-only stores the decoder at 1 byte/weight
    assert 0 <= cells["fp32"]["memory"]["weights_bytes"] - 134_515_008 * 4 < 4096
    assert cells["int8"]["memory"]["weights_bytes"] < 0.5 * cells["fp32"]["memory"]["weights_bytes"]
    assert (run_dir / "summary.md").read_text().count("arithmetic") >= 2
    assert sorted(p.name for p in run_dir.glob("*.png")) == ["accuracy_vs_latency.png", "accuracy_vs_weights.png"]
    assert "SmolLM2" in proc.stdout and "Report:" in proc.stdout
