"""The CLI as a user meets it: exit codes, one-paragraph errors, no tracebacks."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qeval.cli import app
from tests.fakes import MINI

runner = CliRunner()


def _run(*args):
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


def _user_error(code, out):
    assert code == 2, out
    assert "Traceback" not in out
    return out


def test_sweep_on_the_fake_model_writes_a_report(tmp_path):
    code, out = _run("sweep", "--model", "fake", "--precisions", "fp32,int8", "--suites", str(MINI),
                     "--device", "cpu", "--out", str(tmp_path), "--latency-samples", "2", "--warmup", "1")
    assert code == 0, out
    (run_dir,) = list(tmp_path.iterdir())
    assert "Report:" in out and run_dir.name in out.replace("\n", "")
    data = json.loads((run_dir / "results.json").read_text())
    assert [(c["precision"], c["status"]) for c in data["cells"]] == [("fp32", "ok"), ("int8", "ok")]


def test_unknown_precision_suggests_and_lists(tmp_path):
    out = _user_error(*_run("sweep", "--model", "fake", "--precisions", "bf16,in8", "--suites", str(MINI),
                            "--out", str(tmp_path)))
    assert "Unknown precision 'in8'" in out and "Did you mean 'int8'" in out and "fp32" in out


def test_missing_model_path(tmp_path):
    out = _user_error(*_run("sweep", "--model", str(tmp_path / "nope"), "--precisions", "fp32",
                            "--suites", str(MINI), "--out", str(tmp_path)))
    assert "not found" in out and "smollm2-135m" in out


def test_folder_without_config_json(tmp_path):
    out = _user_error(*_run("sweep", "--model", str(tmp_path), "--precisions", "fp32",
                            "--suites", str(MINI), "--out", str(tmp_path)))
    assert "config.json" in out


def _broken_suite(tmp_path, yaml_text=None, cases_text=None):
    dest = tmp_path / "broken"
    shutil.copytree(MINI, dest)
    if yaml_text is not None:
        (dest / "suite.yaml").write_text(yaml_text)
    if cases_text is not None:
        (dest / "cases.jsonl").write_text(cases_text)
    return dest


@pytest.mark.parametrize(
    "yaml_text, cases_text, expect",
    [
        (None, '{"id": "a", "inputs": {"a": 1, "b": 2}, "expected": 3}\n{"id": "a", "inputs": {"a": 1, "b": 2}, "expected": 3}\n', ["cases.jsonl", "a", "2"]),
        (None, '{"id": "a", "inputs": {"a": 1, "b": 2}, "expected": 3}\n{"id": "b", "inputs": {"a": 1}, "expected": 3}\n', ["cases.jsonl", ":2"]),
        (None, "{not json}\n", ["cases.jsonl:1"]),
        (None, "", ["no cases"]),
        ("name: x\nprompt_template: hi\nscorer: {name: numerc}\n", None, ["suite.yaml", "numeric"]),
        ("name: x\nprompt_template: hi\nscorer: {name: numeric}\ngeneraton: {}\n", None, ["suite.yaml", "generaton"]),
        ("name: [x\n", None, ["suite.yaml", "YAML"]),
    ],
    ids=["duplicate-ids", "missing-template-field", "bad-json", "empty", "unknown-scorer", "unknown-key", "yaml-syntax"],
)
def test_malformed_suites_name_file_line_and_key(tmp_path, yaml_text, cases_text, expect):
    suite = _broken_suite(tmp_path, yaml_text, cases_text)
    out = _user_error(*_run("suites", "validate", str(suite)))
    for fragment in expect:
        assert fragment in out, (fragment, out)


def test_suites_validate_accepts_the_shipped_suites():
    suites = sorted(p.parent for p in (Path(__file__).parents[1] / "suites").glob("*/suite.yaml"))
    assert len(suites) == 4
    code, out = _run("suites", "validate", *map(str, suites))
    assert code == 0, out
    assert out.count("ok ") == 4


def test_precisions_lists_every_precision():
    code, out = _run("precisions", "--device", "cpu")
    assert code == 0, out
    for name in ["fp32", "bf16", "fp16", "int8", "w8a8", "fp8", "int4", "nf4", "hqq4"]:
        assert name in out


def test_bad_device_is_a_usage_error(tmp_path):
    out = _user_error(*_run("sweep", "--model", "fake", "--precisions", "fp32", "--suites", str(MINI),
                            "--device", "tpu", "--out", str(tmp_path)))
    assert "tpu" in out


def test_console_script_exits_2_without_traceback(tmp_path):
    exe = Path(sys.executable).parent / "qeval"
    proc = subprocess.run([str(exe), "sweep", "--model", "fake", "--precisions", "int44", "--suites", str(MINI),
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout and "int4" in proc.stderr


def test_gptq_without_calibration_is_refused_before_anything_loads(tmp_path):
    out = _user_error(*_run("sweep", "--model", "fake", "--precisions", "fp32,gptq-int4", "--suites", str(MINI),
                            "--device", "cpu", "--out", str(tmp_path)))
    assert "gptq-int4 need(s) calibration text: pass --calibration NAME" in out
    assert not list(tmp_path.iterdir())


def test_calibration_is_recorded_in_the_run_and_the_cell(tmp_path):
    code, out = _run("sweep", "--model", "fake", "--precisions", "gptq-int4", "--suites", str(MINI),
                     "--calibration", "medical", "--calibration-samples", "8", "--device", "cpu",
                     "--out", str(tmp_path), "--latency-samples", "0")
    assert code == 0, out
    (run_dir,) = list(tmp_path.iterdir())
    data = json.loads((run_dir / "results.json").read_text())
    recorded = data["settings"]["calibration"]
    assert recorded["name"] == "medical" and recorded["samples"] == 8 and len(recorded["content_hash"]) == 64
    assert data["cells"][0]["precision_config"]["calibration"]["sample_hash"] == recorded["sample_hash"]


def test_unknown_calibration_set_is_a_usage_error(tmp_path):
    out = _user_error(*_run("sweep", "--model", "fake", "--precisions", "gptq-int4", "--suites", str(MINI),
                            "--calibration", "medicl", "--device", "cpu", "--out", str(tmp_path)))
    assert "medical" in out
