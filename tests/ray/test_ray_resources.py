"""What each Ray task asks for (no Ray needed): one CPU, one GPU for a CUDA target, and
``--ray-resources`` for every target or one."""

from __future__ import annotations

import pytest

from qeval.cell import CellSpec, Unit
from qeval.executors._ray import python_source, resources_for
from qeval.options import parse_ray_resources
from qeval.targets import parse_target


def _unit(target: str, device: str = "auto", label: str | None = None) -> Unit:
    spec = parse_target(target)
    return Unit(label=label or spec.name, cells=(CellSpec(spec, "suites/x", "0" * 64, device=device),))


def test_defaults_one_cpu_and_a_gpu_for_cuda_targets():
    asked = parse_ray_resources(())
    assert resources_for(_unit("a=fake@fp32"), 0, asked) == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert resources_for(_unit("a=fake@fp32"), 2, asked)["num_gpus"] == 1.0  # auto, on a cluster with GPUs
    assert resources_for(_unit("a=fake@fp32", device="cuda"), 0, asked)["num_gpus"] == 1.0
    assert resources_for(_unit("a=fake@fp32", device="cpu"), 2, asked)["num_gpus"] == 0.0
    assert resources_for(_unit("e=openai:http://127.0.0.1:8000/v1"), 2, asked)["num_gpus"] == 0.0


def test_every_target_then_one_target_or_label():
    asked = parse_ray_resources(("num_cpus=4", "int4:num_gpus=0.5,memory=8e9", "gptq@generic/s1:num_cpus=8"))
    assert resources_for(_unit("fp32=fake@fp32"), 0, asked) == {"num_cpus": 4.0, "num_gpus": 0.0}
    assert resources_for(_unit("int4=fake@int4"), 0, asked) == {"num_cpus": 4.0, "num_gpus": 0.5, "memory": 8e9}
    assert resources_for(_unit("gptq=fake@fp32", label="gptq@generic/s1"), 0, asked)["num_cpus"] == 8.0


@pytest.mark.parametrize(("raw", "says"), [
    ("gpus=1", "KEY one of num_cpus, num_gpus, memory"),
    ("num_cpus=two", "num_cpus must be a number, got 'two'"),
    ("int4:num_gpus=-1", "num_gpus must be 0 or more"),
    ("int4", "expected [TARGET:]KEY=VALUE"),
])
def test_bad_resources_say_what_to_write(raw, says):
    with pytest.raises(ValueError) as info:
        parse_ray_resources((raw,))
    assert says in str(info.value)


def test_which_models_travel_with_the_task():
    assert python_source("fakemodel:right") and python_source("tests.resume_helpers:slow_source")
    assert not any(python_source(m) for m in ("smollm2-135m", "fake", "replay:runs/x.jsonl", "/models/llama", None))
