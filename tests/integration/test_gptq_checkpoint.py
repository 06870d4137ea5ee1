"""`qeval quantize` writes a reusable GPTQ checkpoint; a GPTQ checkpoint folder is evaluated as-is.

The tiny random Llama is quantized once per module (each GPTQ run costs 5-30 s on 2
busy cores); every other test copies, reloads or sweeps that one checkpoint.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from qeval.cli import app
from tests.fakes import MINI

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("gptqmodel") is None, reason="gptqmodel not installed"),
]

runner = CliRunner()
TEXTS = ("the answer is 3 plus 4 = 7.", "patient dose mg daily: what is the name of the city")


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


def _user_error(code: int, out: str) -> str:
    assert code == 2, out
    assert "Traceback" not in out and "error:" in out
    return " ".join(out.split())  # rich wraps long lines


@pytest.fixture(scope="module")
def quantized(tiny_chat_model_dir, tmp_path_factory):
    """(checkpoint folder, CLI output, cache folder): one `qeval quantize` for the module."""
    root = tmp_path_factory.mktemp("gptq-checkpoint")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QEVAL_CACHE", str(root / "cache"))
        code, out = _run("quantize", "--model", tiny_chat_model_dir, "--precision", "gptq-int4",
                         "--calibration", "generic", "--calibration-samples", "8", "--device", "cpu",
                         "--out", root / "ckpt")
    assert code == 0, out
    return root / "ckpt", out, root / "cache"


@pytest.fixture
def cache(quantized, monkeypatch):
    monkeypatch.setenv("QEVAL_CACHE", str(quantized[2]))
    return quantized[2]


def _logits(model, tokenizer) -> torch.Tensor:
    batch = tokenizer(list(TEXTS), return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits.float()


def _qeval_as_is(path: Path):
    from qeval.models import HFSource

    return HFSource.from_dir(str(path), path).load("as-is", "cpu")


def _sweep(model: Path, precisions: str, out: Path) -> dict:
    code, text = _run("sweep", "--model", model, "--precisions", precisions, "--suites", MINI,
                      "--device", "cpu", "--latency-samples", "0", "--out", out)
    assert code == 0, text
    (run_dir,) = list(out.iterdir())
    return json.loads((run_dir / "results.json").read_text())


# --- (a) the command writes a complete checkpoint -----------------------------------------------


def test_quantize_writes_a_complete_checkpoint(quantized, tiny_chat_model_dir):
    ckpt, out, _ = quantized
    config = json.loads((ckpt / "config.json").read_text())
    quant = config["quantization_config"]
    assert quant["quant_method"] == "gptq" and quant["bits"] == 4 and quant["group_size"] == 128
    assert (ckpt / "model.safetensors").is_file() and (ckpt / "tokenizer.json").is_file()
    record = json.loads((ckpt / "qeval-gptq.json").read_text())
    assert record["calibration"]["name"] == "generic" and record["calibration"]["samples"] == 8
    assert record["group_size"] == 128 and record["bits"] == 4 and record["precision"] == "gptq-int4"
    assert record["qeval_version"] and record["packages"]["gptqmodel"] == "7.6.0"
    assert record["quantize_seconds"] > 0 and record["quantize_peak_bytes"] > 0
    assert record["cache"] == "miss" and record["source_model"]["path"] == str(tiny_chat_model_dir)
    # calibrated at float32 on CPU, stored as a bf16 base would be: unquantized tensors in bf16,
    # packed weights int32, scales fp16
    assert record["calibration_dtype"] == "float32" and config["dtype"] == "bfloat16"
    from safetensors import safe_open

    with safe_open(str(ckpt / "model.safetensors"), framework="pt") as handle:
        dtypes = {name.rsplit(".", 1)[-1]: handle.get_slice(name).get_dtype() for name in handle.keys()}
    assert dtypes == {"weight": "BF16", "qweight": "I32", "qzeros": "I32", "g_idx": "I32", "scales": "F16"}
    # the tokenizer is the source model's, unchanged
    assert (ckpt / "tokenizer.json").read_bytes() == (tiny_chat_model_dir / "tokenizer.json").read_bytes()
    # assembled beside the target and renamed: nothing half-written is left behind
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["cache", "ckpt"]
    flat = " ".join(out.split())
    assert "GPTQ int4, group 128, sym, desc_act=False (gptqmodel format)" in flat
    assert record["calibration"]["sample_hash"][:16] in flat and "MB" in flat
    assert f"qeval sweep --model {ckpt} --precisions as-is" in flat


# --- (b) it reloads, through gptqmodel and through transformers, as the model qeval evaluates ----


def test_gptqmodel_reload_gives_the_logits_qeval_evaluates(quantized):
    import gptqmodel

    ckpt = quantized[0]
    loaded = _qeval_as_is(ckpt)
    backend = loaded.applied.details["kernel_backend"]
    assert loaded.applied.precision == "as-is" and backend == "gptq_torch_aten"  # qeval's first CPU pick
    want = _logits(loaded.model.model, loaded.model.tokenizer)
    reloaded = gptqmodel.GPTQModel.load(str(ckpt), device="cpu", backend=gptqmodel.BACKEND(backend)).model
    assert torch.equal(_logits(reloaded, loaded.model.tokenizer), want)


@pytest.mark.skipif(importlib.util.find_spec("optimum.gptq") is None,
                    reason="transformers 5.23 loads GPTQ checkpoints through optimum.gptq: pip install optimum==2.3.0")
def test_transformers_reload_matches_qeval_up_to_kernel_rounding(quantized, tiny_chat_model_dir):
    from transformers import AutoModelForCausalLM

    ckpt = quantized[0]
    loaded = _qeval_as_is(ckpt)
    tok = loaded.model.tokenizer
    qeval_logits = _logits(loaded.model.model, tok)
    hf = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.bfloat16)
    assert any(hasattr(m, "qweight") for m in hf.modules()), "transformers ignored the GPTQ quantization_config"
    hf_logits = _logits(hf, tok)
    fp32 = AutoModelForCausalLM.from_pretrained(tiny_chat_model_dir, dtype=torch.float32)
    quant_err = torch.mean((qeval_logits - _logits(fp32, tok)) ** 2).item()
    loader_err = torch.mean((hf_logits - qeval_logits) ** 2).item()
    # Same weights; transformers picks another CPU kernel (TorchAtenLinear) and keeps fp16 scales,
    # gptqmodel casts them to bf16: the logits differ by bf16 rounding, far below the quantization error.
    assert torch.allclose(hf_logits, qeval_logits, atol=5e-2, rtol=5e-2)
    assert loader_err < 0.1 * quant_err, (loader_err, quant_err)


# --- (c) a sweep over the checkpoint: as-is runs, other precisions are skipped with the reason ---


def test_sweep_runs_as_is_and_skips_requantizing(quantized, tiny_chat_model_dir, cache, tmp_path):
    from qeval.models import HFSource

    ckpt = quantized[0]
    data = _sweep(ckpt, "as-is,int4", tmp_path / "reports")
    card = data["model"]
    assert card["source_precision"] == "GPTQ int4, group 128, sym, desc_act=False (gptqmodel format)"
    cells = {c["precision"]: c for c in data["cells"]}
    as_is, int4 = cells["as-is"], cells["int4"]
    assert as_is["status"] == "ok" and as_is["n"] == 12, as_is["reason"]
    applied = as_is["precision_config"]
    assert applied["library"] == "gptqmodel" and applied["layers_quantized"] == 14
    assert applied["compute_dtype"] == "bfloat16" and applied["layers_skipped"] == ["lm_head"]
    assert applied["details"]["qeval_checkpoint"]["calibration"]["name"] == "generic"
    assert int4["status"] == "skipped"
    assert int4["reason"] == f"the model at {ckpt} is already GPTQ int4 (group 128); evaluate it with --precisions as-is"
    # the card counts the packed layers at their logical size: the same model as the original
    original = HFSource.from_dir("orig", tiny_chat_model_dir).load("fp32", "cpu")
    assert card["parameters"] == sum(p.numel() for p in original.model.model.parameters())


# --- (d) AutoGPTQ layout: scheme in quantize_config.json, config.json plain ----------------------


def _as_autogptq(ckpt: Path, dest: Path) -> Path:
    shutil.copytree(ckpt, dest)
    config = json.loads((dest / "config.json").read_text())
    quant = config.pop("quantization_config")
    (dest / "config.json").write_text(json.dumps(config, indent=1))
    # what AutoGPTQ 0.7 wrote
    (dest / "quantize_config.json").write_text(json.dumps({
        "bits": quant["bits"], "group_size": quant["group_size"], "damp_percent": 0.01,
        "desc_act": quant["desc_act"], "static_groups": False, "sym": quant["sym"], "true_sequential": True,
        "model_name_or_path": None, "model_file_base_name": "model", "quant_method": "gptq",
        "checkpoint_format": "gptq",
    }, indent=1))
    (dest / "qeval-gptq.json").unlink()
    return dest


def test_autogptq_format_checkpoint_is_detected_and_evaluated(quantized, cache, tmp_path):
    from qeval.checkpoint import detect_gptq_checkpoint

    auto = _as_autogptq(quantized[0], tmp_path / "autogptq")
    found = detect_gptq_checkpoint(auto)
    assert found is not None and found.layout == "AutoGPTQ" and found.checkpoint_format == "gptq"
    assert found.config_file == "quantize_config.json" and found.qeval_record is None
    data = _sweep(auto, "as-is,bf16", tmp_path / "reports")
    assert data["model"]["source_precision"] == "GPTQ int4, group 128, sym, desc_act=False (AutoGPTQ format)"
    cells = {c["precision"]: c for c in data["cells"]}
    assert cells["as-is"]["status"] == "ok" and cells["as-is"]["n"] == 12, cells["as-is"]["reason"]
    assert cells["bf16"]["status"] == "skipped" and "already GPTQ int4" in cells["bf16"]["reason"]
    # the same weights as the gptqmodel-format folder
    a, b = _qeval_as_is(auto), _qeval_as_is(quantized[0])
    tok = a.model.tokenizer
    assert torch.equal(_logits(a.model.model, tok), _logits(b.model.model, tok))


# --- (e) user mistakes: one paragraph, exit 2, nothing written ----------------------------------


def _quantize_args(model: Path, out: Path, *extra: str) -> list:
    return ["quantize", "--model", model, "--precision", "gptq-int4", "--calibration", "generic",
            "--calibration-samples", "8", "--device", "cpu", "--out", out, *extra]


def test_quantize_refuses_a_non_empty_out_without_force(tiny_chat_model_dir, cache, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    text = _user_error(*_run(*_quantize_args(tiny_chat_model_dir, out)))
    assert "exists and is not empty" in text and "--force" in text
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_force_replaces_out_reusing_the_cached_quantization(tiny_chat_model_dir, quantized, cache, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, text = _run(*_quantize_args(tiny_chat_model_dir, out, "--force"))
    assert code == 0, text
    assert "reused from the cache" in " ".join(text.split())
    assert not (out / "notes.txt").exists() and (out / "qeval-gptq.json").is_file()
    record = json.loads((out / "qeval-gptq.json").read_text())
    first = json.loads((quantized[0] / "qeval-gptq.json").read_text())
    assert record["cache"] == "hit" and record["quantize_seconds"] == first["quantize_seconds"]
    assert (out / "model.safetensors").read_bytes() == (quantized[0] / "model.safetensors").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_an_engine_checkpoint_is_reused_only_while_its_quantization_key_matches(tiny_chat_model_dir, cache):
    from qeval.calibration import load_calibration
    from qeval.engines._prepare import gptq_checkpoint

    calibration = load_calibration("generic", samples=8, seed=0)
    said: list[str] = []
    first = gptq_checkpoint(str(tiny_chat_model_dir), "gptq-int4", calibration, said.append)
    record_path = first.path / "qeval-gptq.json"
    key = json.loads(record_path.read_text())["quantized_key"]
    assert first.cache == "hit" and (cache / "quantized" / key).is_dir()  # the module's quantization, copied
    again = gptq_checkpoint(str(tiny_chat_model_dir), "gptq-int4", calibration, said.append)
    assert again.cache == "hit" and again.prepare_s == 0.0 and again.sha256 == first.sha256
    # a served copy made from another quantization (other gptqmodel, other settings, an older qeval)
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "quantized_key": "gptq-int4-0123456789abcdef"}))
    said.clear()
    rewritten = gptq_checkpoint(str(tiny_chat_model_dir), "gptq-int4", calibration, said.append)
    assert rewritten.prepare_s > 0 and json.loads(record_path.read_text())["quantized_key"] == key
    assert any("other settings or library versions" in line for line in said), said


@pytest.mark.parametrize("precision", ["int4", "as-is"])
def test_quantize_names_the_checkpoint_precisions(tiny_chat_model_dir, tmp_path, precision):
    args = _quantize_args(tiny_chat_model_dir, tmp_path / "out")
    args[args.index("gptq-int4")] = precision
    text = _user_error(*_run(*args))
    assert "gptq-int4, gptq-int8" in text and f"--precision {precision}" in text
    assert not (tmp_path / "out").exists()


def test_quantize_unknown_precision_suggests(tiny_chat_model_dir, tmp_path):
    args = _quantize_args(tiny_chat_model_dir, tmp_path / "out")
    args[args.index("gptq-int4")] = "gptq-in4"
    text = _user_error(*_run(*args))
    assert "Unknown precision 'gptq-in4'" in text and "gptq-int4" in text


def test_quantize_without_calibration(tiny_chat_model_dir, tmp_path):
    args = _quantize_args(tiny_chat_model_dir, tmp_path / "out")
    del args[args.index("--calibration"):args.index("--calibration") + 2]
    text = _user_error(*_run(*args))
    assert "needs calibration text: pass --calibration" in text


def test_quantize_with_an_unknown_calibration_set(tiny_chat_model_dir, tmp_path):
    args = _quantize_args(tiny_chat_model_dir, tmp_path / "out")
    args[args.index("generic")] = "generik"
    text = _user_error(*_run(*args))
    assert "generik" in text and "generic" in text
    assert not (tmp_path / "out").exists()


def test_quantize_refuses_an_already_quantized_model(quantized, tmp_path):
    text = _user_error(*_run(*_quantize_args(quantized[0], tmp_path / "again")))
    assert "already a GPTQ checkpoint" in text and "--precisions as-is" in text
