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


# -- the memory a task asks for ----------------------------------------------------------------

from qeval.executors._ray import RayExecutor, memory_asked  # noqa: E402
from qeval.executors._task_memory import BASE_BYTES, PEAK_FACTOR, parameter_count, task_memory  # noqa: E402
from tests.ray.helpers import Notes  # noqa: E402


def test_the_parameter_count_is_read_from_the_safetensors_headers(tiny_perf_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_perf_model_dir)
    assert parameter_count(str(tiny_perf_model_dir)) == sum(p.numel() for p in model.parameters())  # tied: once


def test_the_bundled_model_s_count_is_known_without_converting_it():
    from qeval.models._builtin import SMOLLM2, materialise

    assert parameter_count("smollm2-135m") == SMOLLM2.parameters
    assert parameter_count(str(materialise(SMOLLM2))) == SMOLLM2.parameters  # what the conversion writes


def test_a_model_task_asks_for_its_weights_at_the_load_dtype_and_a_margin(tiny_perf_model_dir):
    params = parameter_count(str(tiny_perf_model_dir))
    fp32 = task_memory(parse_target(f"a={tiny_perf_model_dir}@fp32"))
    bf16 = task_memory(parse_target(f"a={tiny_perf_model_dir}@bf16"))
    assert fp32.memory_bytes == int(BASE_BYTES + params * 4 * PEAK_FACTOR)
    assert bf16.memory_bytes == int(BASE_BYTES + params * 2 * PEAK_FACTOR)
    assert "parameters at 4 B" in fp32.how
    big = task_memory(parse_target("a=smollm2-135m@fp32")).memory_bytes
    assert 1.7e9 < big < 2.0e9  # 134.5M x 4 B x 1.5 + 1 GiB


@pytest.mark.parametrize(("target", "why"), [
    ("e=openai:http://127.0.0.1:8000/v1", "only sends requests"),
    ("v=vllm:smollm2-135m@fp32", "engine's settings"),
    ("f=fake@fp32", "cannot read 'fake'"),
    ("p=tests.resume_helpers:slow_source@fp32", "cannot read"),
])
def test_no_estimate_where_the_driver_cannot_tell(target, why):
    estimate = task_memory(parse_target(target))
    assert estimate.memory_bytes is None and why in estimate.how


def test_the_estimate_is_asked_for_unless_given_and_dropped_when_no_node_has_it(tiny_perf_model_dir):
    unit = _unit(f"fp32={tiny_perf_model_dir}@fp32")
    expected = float(task_memory(unit.cells[0].target).memory_bytes)
    roomy, small = [{"CPU": 2.0, "memory": 20e9}], [{"CPU": 2.0, "memory": expected / 2}]
    notes = Notes()
    executor = RayExecutor(reporter=notes)
    assert executor._resources(unit, 0, roomy) == {"num_cpus": 1.0, "num_gpus": 0.0, "memory": expected}
    assert "asks for" in notes.lines[-1] and "--ray-resources fp32:memory=BYTES" in notes.lines[-1]
    # a guess must not make a sweep that may fit fail: no node has that much, so none is asked
    assert "memory" not in executor._resources(unit, 0, small)
    assert "more than any node offers" in notes.lines[-1]
    # what the user gives wins, even where no node has it (then the unit fails as unplaceable, as before)
    given = RayExecutor(reporter=notes, resources=("fp32:memory=1e12",))
    assert memory_asked(unit, given.resources)
    assert given._resources(unit, 0, small)["memory"] == 1e12
    assert task_memory(_unit("f=fake@fp32").cells[0].target).memory_bytes is None
    assert "memory" not in executor._resources(_unit("f=fake@fp32"), 0, roomy)
