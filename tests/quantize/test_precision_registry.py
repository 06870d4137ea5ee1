"""The precision registry: names, descriptions, configs and availability answers."""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import pytest
import torch

from qeval.errors import BackendUnavailable, UnknownNameError
from qeval.quantize import PRECISIONS, get_precision, list_precisions

EXPECTED = [
    "fp32", "bf16", "fp16", "as-is", "int8", "w8a8", "fp8", "int4", "nf4", "hqq4", "gptq-int4", "gptq-int8",
    "w8a8-static", "w8a8-static-p999",
]


def test_every_expected_precision_is_registered():
    assert PRECISIONS.names() == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_precision_shape(name):
    p = get_precision(name)
    assert p.name == name
    assert p.description and "\n" not in p.description
    # as-is loads a checkpoint in its stored dtype: it has none of its own
    assert isinstance(p.load_dtype, torch.dtype) if name != "as-is" else p.load_dtype is None
    assert dataclasses.is_dataclass(p.config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.config.compute_dtype = "float64"
    json.dumps(dataclasses.asdict(p.config))


@pytest.mark.parametrize("name", EXPECTED)
def test_unavailable_reason_on_cpu_is_none_here(name):
    # every backend is installed in the dev environment and all run on CPU
    assert get_precision(name).unavailable_reason("cpu") is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CUDA-less answer")
@pytest.mark.parametrize("name", EXPECTED)
def test_cuda_without_gpu_is_a_reason(name):
    reason = get_precision(name).unavailable_reason("cuda")
    assert isinstance(reason, str) and "CUDA is not available" in reason


def test_unknown_device_is_a_reason_not_an_error():
    assert "unknown device" in get_precision("int8").unavailable_reason("tpu")


def test_missing_library_names_the_pip_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "hqq" else real(name, *a)
    )
    reason = get_precision("hqq4").unavailable_reason("cpu")
    assert "pip install hqq==" in reason and "qeval[hqq]" in reason
    assert get_precision("int8").unavailable_reason("cpu") is None
    with pytest.raises(BackendUnavailable, match="pip install hqq"):
        get_precision("hqq4").apply(torch.nn.Linear(4, 4), "cpu")


def test_broken_environment_is_a_reason_not_an_error(monkeypatch):
    def explode(*args, **kwargs):
        raise ValueError("broken metadata")

    monkeypatch.setattr(importlib.util, "find_spec", explode)
    assert "broken metadata" in get_precision("nf4").unavailable_reason("cpu")


def test_unknown_name_suggests_and_lists():
    with pytest.raises(UnknownNameError) as info:
        get_precision("int5")
    message = str(info.value)
    assert "Did you mean 'int8'?" in message
    assert all(name in message for name in EXPECTED)
    assert isinstance(info.value, KeyError)


def test_list_precisions_rows():
    rows = list_precisions("cpu")
    assert [r[0] for r in rows] == EXPECTED
    assert all(isinstance(desc, str) and reason is None for _, desc, reason in rows)


def test_calibrated_names_agree_with_the_precisions():
    from qeval.quantize import CALIBRATED, PRECISIONS, get_precision

    assert CALIBRATED == {name for name in PRECISIONS if get_precision(name).needs_calibration}


def test_checking_a_name_imports_neither_torch_nor_a_backend():
    import subprocess
    import sys

    code = ("import sys; from qeval.quantize import check_precision_name as c; c('int4'); "
            "print(sorted(m for m in ('torch', 'optimum.quanto', 'qeval.quantize._base') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_precision_config_is_readable_without_torch():
    # a cached plugin run builds its cache keys from these: importing torch would be most of its time
    import subprocess
    import sys

    code = ("import sys; from qeval.quantize import PRECISIONS, get_precision\n"
            "for n in PRECISIONS: p = get_precision(n); p.config, p.needs_calibration, p.description\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
