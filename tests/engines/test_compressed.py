"""llm-compressor checkpoints for vLLM (qeval.engines._compressed and its script).

The unit tests run the real subprocess protocol (JSON in, JSON out, log kept, atomic rename)
against a stand-in script, so they need neither llm-compressor nor vLLM. The real test
(marked ``vllm``) writes a ``w8a8-int8`` checkpoint of the tiny chat Llama with llm-compressor
in ``.venv-llmc`` and sweeps it with vLLM's CPU build.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from qeval.calibration import CalibrationSet, sample_digest
from qeval.engines import _compressed
from qeval.engines import _llmc_script as script
from qeval.engines._compressed import (
    DONE_FILE,
    LLMC_ENV,
    LOG_FILE,
    RECIPES,
    CompressedCheckpointError,
    compressed_checkpoint,
    recipe_for,
    script_args,
    unavailable_reason,
)
from qeval.errors import BackendUnavailable, UsageError

REPO_ROOT = Path(__file__).resolve().parents[2]
LLMC_VENV = Path(os.environ.get(LLMC_ENV) or REPO_ROOT / ".venv-llmc")


def _calibration(texts=("one text " * 20, "another text " * 20), seed=0) -> CalibrationSet:
    texts = tuple(texts)
    return CalibrationSet(name="unit", path=Path("calibration.jsonl"), texts=texts, content_hash="c" * 64,
                          sample_hash=sample_digest(texts), samples=len(texts), seed=seed, available=len(texts))


# --- recipes and arguments ----------------------------------------------------------------------


def test_w8a8_int8_is_llm_compressors_smoothquant_then_gptq_w8a8_recipe():
    recipe = recipe_for("w8a8-int8")
    smooth, gptq = recipe.modifiers
    assert smooth == {"type": "SmoothQuantModifier", "args": {"smoothing_strength": 0.8}}
    assert gptq["type"] == "GPTQModifier"
    assert gptq["args"]["scheme"] == "W8A8" and gptq["args"]["ignore"] == ["lm_head"]
    assert "dynamic" in recipe.activations and "no activation observer" in recipe.activations


@pytest.mark.parametrize(("precision", "observer"), [("w8a8-int8-minmax", "minmax"), ("w8a8-int8-mse", "mse")])
def test_the_observer_variants_differ_only_in_the_static_activation_observer(precision, observer):
    recipe = recipe_for(precision)
    assert recipe.modifiers[0]["type"] == "SmoothQuantModifier"
    group = recipe.modifiers[1]["args"]["config_groups"]["group_0"]
    acts = group["input_activations"]
    assert acts == {"num_bits": 8, "type": "int", "strategy": "tensor", "symmetric": True, "dynamic": False,
                    "observer": observer}
    assert group["weights"]["strategy"] == "channel" and group["weights"]["num_bits"] == 8
    other = recipe_for("w8a8-int8-mse" if observer == "minmax" else "w8a8-int8-minmax")
    assert other.digest() != recipe.digest()
    assert json.dumps(recipe.modifiers).replace(f'"{observer}"', "X") == \
        json.dumps(other.modifiers).replace(f'"{"mse" if observer == "minmax" else "minmax"}"', "X")


def test_w4a16_picks_its_group_size_from_the_layers():
    (gptq,) = recipe_for("w4a16").modifiers
    weights = gptq["args"]["config_groups"]["group_0"]["weights"]
    assert weights["num_bits"] == 4 and weights["group_size"] == "auto"
    assert script.choose_group_size([576, 1536], [128, 64, 32]) == 64  # SmolLM2-135M
    assert script.choose_group_size([256, 512], [128, 64, 32]) == 128
    assert script.choose_group_size([100], [128, 64, 32]) is None
    filled = script.fill_auto(gptq["args"], 64)
    assert filled["config_groups"]["group_0"]["weights"]["group_size"] == 64
    assert script.needs_group_size(gptq["args"]) and not script.needs_group_size(filled)
    with pytest.raises(ValueError, match="no candidate divides"):
        script.fill_auto(gptq["args"], None)


def test_an_unknown_precision_is_a_usage_error_naming_the_ones_there_are():
    with pytest.raises(UsageError, match="w8a8-int8, w8a8-int8-minmax, w8a8-int8-mse, w4a16"):
        recipe_for("w8a8-fp8")


def test_script_arguments_are_json_and_carry_the_texts_and_the_recipe(tmp_path):
    calibration = _calibration()
    args = script_args(RECIPES["w8a8-int8"], tmp_path / "model", tmp_path / "out", tmp_path / "r.json",
                       calibration.texts, seed=3)
    again = json.loads(json.dumps(args))
    assert again["texts"] == list(calibration.texts) and again["seed"] == 3
    assert again["max_seq_length"] == 512 and again["min_total_tokens"] == "widest"
    assert [m["type"] for m in again["modifiers"]] == ["SmoothQuantModifier", "GPTQModifier"]


def test_too_few_calibration_tokens_say_how_many_samples_would_do():
    assert script.token_budget([300, 300], 576) == {"texts": 2, "tokens": 600, "longest": 300}
    with pytest.raises(script.CalibrationTooSmall, match=r"give 200 tokens .* at least 576 .* about 6 samples"):
        script.token_budget([100, 100], 576)


# --- the environment ----------------------------------------------------------------------------


def test_a_missing_environment_is_a_clear_reason(tmp_path, monkeypatch):
    monkeypatch.setenv(LLMC_ENV, str(tmp_path / "nowhere"))
    reason = unavailable_reason()
    assert reason is not None and f"{LLMC_ENV}={tmp_path / 'nowhere'}" in reason
    assert "make .venv-llmc/.llmc-installed" in reason and "torch==2.13.0 llmcompressor==0.14.0.1" in reason


def test_an_environment_without_llmcompressor_says_where_to_install_it(monkeypatch):
    monkeypatch.setenv(LLMC_ENV, sys.executable)  # qeval's own environment has no llmcompressor
    _compressed.llmc_version.cache_clear()
    reason = unavailable_reason()
    assert reason is not None and f"{sys.executable} has no llmcompressor" in reason
    assert f"{sys.executable} -m pip install llmcompressor==0.14.0.1" in reason


# --- writing and caching, with a stand-in for the script ----------------------------------------

# Writes what llm-compressor would (config.json with a compressed-tensors quantization_config, a
# weights file) and a result; counts its runs; FAIL in the environment makes it fail half-way.
FAKE_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    args = json.loads(Path(sys.argv[1]).read_text())
    out = Path(args["out"])
    counter = Path(os.environ["FAKE_LLMC_COUNTER"])
    counter.write_text(str(int(counter.read_text() or 0) + 1) if counter.exists() else "1")
    print("fake llm-compressor: calibrating on", len(args["texts"]), "texts")
    out.mkdir(parents=True)
    (out / "model.safetensors").write_bytes(b"w" * 1000)
    if os.environ.get("FAKE_LLMC_FAIL"):
        print("RuntimeError: the fake quantizer broke", file=sys.stderr)
        Path(args["result"]).write_text(json.dumps({"ok": False, "kind": "library", "error": "RuntimeError: broke"}))
        sys.exit(1)
    qc = {"quant_method": "compressed-tensors", "format": "int-quantized",
          "config_groups": {"group_0": {"input_activations": {"observer": None, "dynamic": True}}}}
    (out / "config.json").write_text(json.dumps({"model_type": "llama", "quantization_config": qc}))
    Path(args["result"]).write_text(json.dumps({
        "ok": True, "versions": {"llmcompressor": "0.14.0.1", "compressed-tensors": "0.19.0"},
        "group_size": None, "calibration": {"texts": len(args["texts"]), "tokens": 99, "longest": 50,
                                            "max_seq_length": args["max_seq_length"]},
        "input_scales": {"a": 0.01, "b": 0.02, "c": 0.04} if '"observer"' in json.dumps(args["modifiers"]) else {},
        "modifiers_seen": [m["type"] for m in args["modifiers"]]}))
""")


@pytest.fixture
def fake_llmc(tmp_path, monkeypatch, tiny_llama_dir):
    """A stand-in llm-compressor environment: this Python running FAKE_SCRIPT; QEVAL_CACHE in tmp_path."""
    fake = tmp_path / "fake_llmc_script.py"
    fake.write_text(FAKE_SCRIPT)
    monkeypatch.setattr(_compressed, "SCRIPT", fake)
    monkeypatch.setattr(_compressed, "llmc_version", lambda python: "0.14.0.1")
    monkeypatch.setenv(LLMC_ENV, sys.executable)
    monkeypatch.setenv("QEVAL_CACHE", str(tmp_path / "cache"))
    counter = tmp_path / "runs"
    monkeypatch.setenv("FAKE_LLMC_COUNTER", str(counter))
    return {"model": str(tiny_llama_dir), "runs": lambda: int(counter.read_text()) if counter.exists() else 0}


def test_a_checkpoint_is_written_once_then_served_from_the_cache(fake_llmc):
    said: list[str] = []
    first = compressed_checkpoint(fake_llmc["model"], "w8a8-int8", _calibration(), said.append)
    assert first.cache == "miss" and fake_llmc["runs"]() == 1
    assert first.path.name.startswith("model-w8a8-int8-") and first.path.parent.name == "served"
    assert first.prepared_by == "llm-compressor 0.14.0.1 (recipe SmoothQuant 0.8 + GPTQ W8A8)"
    assert first.quant_config["quant_method"] == "compressed-tensors"
    assert any("no activation observer" in n for n in first.notes)
    assert not any("static activation ranges" in n for n in first.notes)
    assert any("2 texts, 99 tokens (each cut to 512)" in n for n in first.notes)
    assert first.weights_bytes == 1000 and len(first.sha256) == 64
    assert said and "llm-compressor" in said[0]
    record = json.loads((first.path / DONE_FILE).read_text())
    assert record["recipe_sha256"] == RECIPES["w8a8-int8"].digest()
    assert record["modifiers_seen"] == ["SmoothQuantModifier", "GPTQModifier"]
    assert record["calibration_set"]["sample_hash"] == _calibration().sample_hash
    assert "calibrating on 2 texts" in (first.path / LOG_FILE).read_text()
    # nothing left beside it but the checkpoint
    assert [p.name for p in first.path.parent.iterdir()] == [first.path.name]

    second = compressed_checkpoint(fake_llmc["model"], "w8a8-int8", _calibration(), said.append)
    assert second.cache == "hit" and fake_llmc["runs"]() == 1
    assert second.sha256 == first.sha256 and second.path == first.path


def test_another_sample_or_precision_is_another_checkpoint(fake_llmc):
    a = compressed_checkpoint(fake_llmc["model"], "w8a8-int8", _calibration(), lambda _: None)
    b = compressed_checkpoint(fake_llmc["model"], "w8a8-int8", _calibration(texts=("x " * 30,)), lambda _: None)
    c = compressed_checkpoint(fake_llmc["model"], "w8a8-int8-mse", _calibration(), lambda _: None)
    assert len({a.path, b.path, c.path}) == 3 and fake_llmc["runs"]() == 3


def test_a_static_activation_checkpoint_notes_its_ranges(fake_llmc):
    checkpoint = compressed_checkpoint(fake_llmc["model"], "w8a8-int8-mse", _calibration(), lambda _: None)
    assert "static activation ranges (127 x scale): median 2.54, 1.27 to 5.08 over 3 layers (per layer in " \
        "qeval-llmc.json)" in checkpoint.notes
    assert any("mse observer" in n for n in checkpoint.notes)


def test_a_checkpoint_made_with_another_recipe_is_made_again(fake_llmc):
    first = compressed_checkpoint(fake_llmc["model"], "w8a8-int8", _calibration(), lambda _: None)
    record = json.loads((first.path / DONE_FILE).read_text())
    (first.path / DONE_FILE).write_text(json.dumps({**record, "recipe_sha256": "older"}))
    again = compressed_checkpoint(fake_llmc["model"], "w8a8-int8", _calibration(), lambda _: None)
    assert again.cache == "miss" and fake_llmc["runs"]() == 2 and again.path == first.path


def test_a_failed_write_leaves_no_checkpoint_and_reports_the_log_tail(fake_llmc, monkeypatch):
    monkeypatch.setenv("FAKE_LLMC_FAIL", "1")
    with pytest.raises(CompressedCheckpointError) as caught:
        compressed_checkpoint(fake_llmc["model"], "w8a8-int8", _calibration(), lambda _: None)
    message = str(caught.value)
    assert "RuntimeError: broke" in message and "the fake quantizer broke" in message
    served = Path(os.environ["QEVAL_CACHE"]) / "served"
    left = sorted(p.name for p in served.iterdir())
    assert len(left) == 1 and left[0].endswith(".failed.log")  # no half checkpoint, no scratch folder
    assert str(served / left[0]) in message
    monkeypatch.delenv("FAKE_LLMC_FAIL")
    assert compressed_checkpoint(fake_llmc["model"], "w8a8-int8", _calibration(), lambda _: None).cache == "miss"


def test_calibration_is_required(fake_llmc):
    with pytest.raises(UsageError, match="--calibration NAME"):
        compressed_checkpoint(fake_llmc["model"], "w4a16", None, lambda _: None)


def test_no_llm_compressor_makes_a_skipped_vllm_target(tmp_path, monkeypatch, tiny_llama_dir):
    """Through the lead's engine and the runner: BackendUnavailable, so ``skipped`` with the reason."""
    from qeval.targets._managed import ManagedTarget
    from qeval.engines._vllm import VllmEngine
    from qeval.runner import Unprovisioned, provision
    from qeval.targets import parse_target

    monkeypatch.setenv(LLMC_ENV, str(tmp_path / "no-venv"))
    monkeypatch.setenv("QEVAL_CACHE", str(tmp_path / "cache"))
    engine = VllmEngine(sys.executable)  # "vLLM" found (an interpreter exists); llm-compressor is not
    target = ManagedTarget(parse_target(f"w8=vllm:{tiny_llama_dir}@w8a8-int8"), engine, calibration=_calibration(),
                           servers_dir=tmp_path / "servers")
    outcome = provision(target, "cpu")
    assert isinstance(outcome, Unprovisioned) and outcome.status == "skipped"
    assert outcome.reason.startswith("w8a8-int8: llm-compressor is not installed")
    assert not (tmp_path / "servers").exists()  # no server was started


# --- the real thing -----------------------------------------------------------------------------


def _require_llmc() -> Path:
    python = LLMC_VENV / "bin" / "python"
    if (LLMC_VENV / ".llmc-installed").exists() and python.exists():
        return python
    msg = f"llm-compressor venv not installed ({LLMC_VENV}): run make test (or make .venv-llmc/.llmc-installed)"
    if os.environ.get("CI") or os.environ.get("QEVAL_REQUIRE_VLLM") == "1":
        pytest.fail(f"{msg}; CI (or QEVAL_REQUIRE_VLLM=1) requires the real-engine tests to run.", pytrace=False)
    pytest.skip(msg)


@pytest.mark.vllm
@pytest.mark.slow
def test_a_w8a8_int8_checkpoint_is_written_and_served_by_vllm(tmp_path, monkeypatch, capsys, tiny_chat_model_dir):
    from tests.servers.vllm import VLLM_VENV, vllm_installed

    python = _require_llmc()
    if not vllm_installed():
        if os.environ.get("CI") or os.environ.get("QEVAL_REQUIRE_VLLM") == "1":
            pytest.fail(f"{VLLM_VENV} is missing and CI requires the real-server tests to run.", pytrace=False)
        pytest.skip("vLLM venv not installed: run make test (or make .venv-vllm/.vllm-installed)")
    from typer.testing import CliRunner

    from qeval.calibration import load_calibration
    from qeval.cli import app

    monkeypatch.setenv(LLMC_ENV, str(python))
    monkeypatch.setenv("QEVAL_VLLM", str(VLLM_VENV))
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    monkeypatch.setenv("QEVAL_CACHE", str(tmp_path / "cache"))  # made here, whatever an earlier run cached
    # the checkpoint: written by llm-compressor, recorded, cached. The tiny chat Llama (a real
    # tokenizer, a chat template) rather than SmolLM2, whose SmoothQuant + GPTQ took 175 s on 2 cores
    # of a fresh CI machine: what is tested is the path (llm-compressor's venv, the recipe, the
    # record, vLLM serving compressed-tensors), not SmolLM2's quality at w8a8.
    model = str(tiny_chat_model_dir)
    calibration = load_calibration("generic", samples=8, seed=0)
    checkpoint = compressed_checkpoint(model, "w8a8-int8", calibration, lambda _: None, python=str(python))
    config = json.loads((checkpoint.path / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "compressed-tensors"
    (group,) = config["config_groups"].values()
    assert group["weights"]["num_bits"] == 8 and group["input_activations"]["dynamic"] is True
    assert checkpoint.prepared_by.startswith("llm-compressor 0.14")
    assert checkpoint.cache == "miss"
    assert compressed_checkpoint(model, "w8a8-int8", calibration, lambda _: None, python=str(python)).cache == "hit"

    # the managed sweep serves it (the checkpoint comes from the cache just written)
    out = tmp_path / "reports"
    result = CliRunner().invoke(app, [
        "sweep", "--target", f"w8=vllm:{model}@w8a8-int8", "--calibration", "generic",
        "--calibration-samples", "8", "--suites", "suites/arithmetic", "--limit", "4", "--latency-samples", "2",
        "--warmup", "0", "--engine-arg", "enforce-eager", "--engine-arg", "max-model-len=512", "--out", str(out),
    ])
    (run,) = out.iterdir()
    data = json.loads((run / "results.json").read_text())
    cells = [c for c in data["cells"] if c["precision"] == "w8"]
    with capsys.disabled():
        print(f"\nw8a8-int8 on vLLM CPU: {[(c['status'], c.get('reason')) for c in cells]}")
    assert cells and all(c["status"] in ("ok", "skipped") for c in cells), (result.output, cells)
    if cells[0]["status"] == "skipped":  # vLLM's CPU build refused it: its own words, recorded
        assert "vLLM refused w8a8-int8" in cells[0]["reason"], cells[0]["reason"]
    else:
        assert all(c["status"] == "ok" for c in cells), cells
        assert result.exit_code == 0, result.output
