"""Recognising GPTQ checkpoint folders from their metadata alone (no weights, no gptqmodel)."""

from __future__ import annotations

import json

import pytest

from qeval.checkpoint import detect_gptq_checkpoint
from qeval.errors import ModelError

LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "dtype": "bfloat16"}
GPTQMODEL_QUANT = {
    "bits": 4, "group_size": 128, "desc_act": False, "sym": True, "quant_method": "gptq",
    "checkpoint_format": "gptq", "meta": {"quantizer": ["gptqmodel:7.6.0"]},
}


def _folder(tmp_path, config, quantize_config=None):
    (tmp_path / "config.json").write_text(json.dumps(config))
    if quantize_config is not None:
        (tmp_path / "quantize_config.json").write_text(
            quantize_config if isinstance(quantize_config, str) else json.dumps(quantize_config))
    return tmp_path


def test_gptqmodel_layout(tmp_path):
    found = detect_gptq_checkpoint(_folder(tmp_path, {**LLAMA, "quantization_config": GPTQMODEL_QUANT}))
    assert found is not None
    assert (found.bits, found.group_size, found.sym, found.desc_act) == (4, 128, True, False)
    assert found.layout == "gptqmodel" and found.config_file == "config.json"
    assert found.quantizer == ("gptqmodel:7.6.0",) and found.qeval_record is None
    assert found.describe() == "GPTQ int4, group 128, sym, desc_act=False (gptqmodel format)"
    assert found.skip_reason("int4") == (
        f"the model at {tmp_path} is already GPTQ int4 (group 128); evaluate it with --precisions as-is"
    )


def test_config_json_wins_over_quantize_config_json(tmp_path):
    # gptqmodel writes both; the scheme in config.json is the one transformers reads
    folder = _folder(tmp_path, {**LLAMA, "quantization_config": GPTQMODEL_QUANT}, {"bits": 8, "quant_method": "gptq"})
    assert detect_gptq_checkpoint(folder).bits == 4


def test_autogptq_layout_and_v2_format(tmp_path):
    folder = _folder(tmp_path, LLAMA, {"bits": 8, "group_size": -1, "desc_act": True, "sym": False,
                                       "checkpoint_format": "gptq_v2"})
    found = detect_gptq_checkpoint(folder)
    assert found.layout == "AutoGPTQ" and found.config_file == "quantize_config.json"
    assert found.checkpoint_format == "gptq_v2"
    assert found.describe() == "GPTQ int8, per-channel, asym, desc_act=True (AutoGPTQ format, gptq_v2)"


def test_transformers_layout_without_gptqmodel_meta(tmp_path):
    quant = {k: v for k, v in GPTQMODEL_QUANT.items() if k != "meta"}
    found = detect_gptq_checkpoint(_folder(tmp_path, {**LLAMA, "quantization_config": quant}))
    assert found.layout == "transformers"


@pytest.mark.parametrize("config, quantize_config", [
    (LLAMA, None),
    ({**LLAMA, "quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True}}, None),
    (LLAMA, {"quant_method": "awq", "bits": 4}),
    (LLAMA, {"zero_point": True}),
])
def test_not_gptq(tmp_path, config, quantize_config):
    assert detect_gptq_checkpoint(_folder(tmp_path, config, quantize_config)) is None


def test_malformed_fields_name_file_and_key(tmp_path):
    bad = {**GPTQMODEL_QUANT, "bits": "4"}
    with pytest.raises(ModelError, match=r"config.json: quantization_config.bits is '4'"):
        detect_gptq_checkpoint(_folder(tmp_path, {**LLAMA, "quantization_config": bad}))


def test_unreadable_quantize_config_json(tmp_path):
    with pytest.raises(ModelError, match=r"quantize_config.json: cannot read it as JSON"):
        detect_gptq_checkpoint(_folder(tmp_path, LLAMA, "{not json"))


def test_model_card_and_stored_dtype(tmp_path):
    from qeval.models import HFSource

    gptq = HFSource.from_dir("x", _folder(tmp_path, {**LLAMA, "quantization_config": GPTQMODEL_QUANT}))
    assert gptq.card.source_precision == "GPTQ int4, group 128, sym, desc_act=False (gptqmodel format)"
    assert gptq.gptq is not None
    plain = HFSource.from_dir("x", _folder(tmp_path, {**LLAMA, "dtype": "float16"}))
    assert plain.gptq is None and plain.stored_dtype == "float16" and plain.card.source_precision == "float16"
    legacy = HFSource.from_dir("x", _folder(tmp_path, {"architectures": ["LlamaForCausalLM"], "torch_dtype": "bfloat16"}))
    assert legacy.stored_dtype == "bfloat16"
    unknown = HFSource.from_dir("x", _folder(tmp_path, {"architectures": ["LlamaForCausalLM"]}))
    assert unknown.stored_dtype == "float32"


def test_as_is_is_listed(tmp_path):
    from qeval.quantize import get_precision, list_precisions

    names = {name: reason for name, _, reason in list_precisions("cpu")}
    assert names["as-is"] is None
    assert get_precision("as-is").load_dtype is None and not get_precision("as-is").needs_calibration


def test_the_record_name_matches_the_cache_marker():
    from qeval.checkpoint import QEVAL_RECORD
    from qeval.quantize._gptq import DONE_FILE

    assert QEVAL_RECORD == DONE_FILE


def test_quantize_needs_a_model_folder(tmp_path):
    from typer.testing import CliRunner

    from qeval.cli import app

    result = CliRunner().invoke(app, ["quantize", "--model", "fake", "--precision", "gptq-int4",
                                      "--calibration", "generic", "--out", str(tmp_path / "out")])
    out = " ".join((result.output + (result.stderr if result.stderr_bytes is not None else "")).split())
    assert result.exit_code == 2 and "Traceback" not in out
    assert "needs a Hugging Face model folder" in out and not (tmp_path / "out").exists()
