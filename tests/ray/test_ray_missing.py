"""Without Ray installed, ``--executor ray`` is a usage error that prints the pip line, on every
surface, before anything is loaded or written (these tests need no Ray)."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from qeval.cli import app
from qeval.config import SweepConfig
from qeval.errors import UsageError
from qeval.models import FakeSource
from qeval.sweep import run_sweep
from tests.fakes import MINI


@pytest.fixture
def no_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError


def test_run_sweep_names_the_pip_line(tmp_path, no_ray):
    config = SweepConfig(model="fake", precisions=("fp32",), suites=(str(MINI),), device="cpu", out_dir=str(tmp_path),
                         executor="ray")
    with pytest.raises(UsageError, match=r"--executor ray: ray is not installed.*pip install 'qeval\[ray\]'"):
        run_sweep(config, source=FakeSource())
    assert not list(tmp_path.iterdir())


def test_the_cli_says_so_without_a_traceback(tmp_path, no_ray):
    result = CliRunner().invoke(app, ["sweep", "--model", "fake", "--precisions", "fp32", "--suites", str(MINI),
                                      "--out", str(tmp_path), "--executor", "ray"])
    out = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 2
    assert "pip install 'qeval[ray]'" in out and "Traceback" not in out
    assert not list(tmp_path.iterdir())


def test_an_unknown_executor_and_bad_resources_are_refused_with_the_choices(tmp_path):
    result = CliRunner().invoke(app, ["sweep", "--model", "fake", "--precisions", "fp32", "--suites", str(MINI),
                                      "--out", str(tmp_path), "--executor", "slurm"])
    out = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 2 and "unknown executor 'slurm'; use local or ray." in out
    config = SweepConfig(model="fake", precisions=("fp32",), suites=(str(MINI),), device="cpu", out_dir=str(tmp_path),
                         ray_resources=("int4:gpus=1",))
    with pytest.raises(UsageError, match=r"--ray-resources: 'int4:gpus=1': expected \[TARGET:\]KEY=VALUE"):
        run_sweep(config, source=FakeSource())


def test_the_plugin_refuses_it_at_configuration(pytester, no_ray):
    from pytest_qeval.options import read_options

    config = pytester.parseconfig("--qeval", "--qeval-model", "fake", "--qeval-executor", "ray")
    with pytest.raises(pytest.UsageError, match=r"--qeval-executor ray: ray is not installed.*pip install"):
        read_options(config)
