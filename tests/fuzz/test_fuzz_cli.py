"""Fuzzed `qeval sweep` options: a bad value exits non-zero with a message naming it, never a traceback.

Every run uses the fake model and the mini suite with exactly one bad option, so
nothing heavy loads: each fails in validation, before any model work.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from qeval.cli import app
from qeval.quantize import PRECISIONS
from tests.fakes import MINI

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
runner = CliRunner()
# Names that print as themselves (repr adds no escapes, rich reads no markup).
NAMES = st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=12)


def _sweep(tmp_path, **options: str) -> str:
    args = {"model": "fake", "precisions": "fp32", "suites": str(MINI), "device": "cpu", "out": str(tmp_path / "reports"),
            "latency-samples": "0", **options}
    result = runner.invoke(app, ["sweep", *[x for k, v in args.items() for x in (f"--{k}", v)]])
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code != 0, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output, output
    return output


def _names(output: str, value: str) -> bool:
    return value in " ".join(output.split())  # rich may wrap a long line


@FUZZ
@given(names=st.lists(NAMES, min_size=1, max_size=3))
def test_unknown_precisions(tmp_path, names):
    bad = [n for n in names if n not in PRECISIONS.names()]
    assume(bad)
    output = _sweep(tmp_path, precisions=",".join(names))
    assert _names(output, bad[0]), output


@FUZZ
@given(limit=st.integers(max_value=0).map(str) | st.text(max_size=6).filter(lambda t: not t.strip().lstrip("+-").isdigit()))
def test_bad_limit(tmp_path, limit):
    assume(not limit.startswith("-") or limit.lstrip("-").isdigit())  # "-x" would read as another option
    output = _sweep(tmp_path, limit=limit)
    assert "--limit" in output, output


@FUZZ
@given(name=NAMES)
def test_nonexistent_suites(tmp_path, name):
    output = _sweep(tmp_path, suites=str(tmp_path / "no-such" / name))
    assert _names(output, name), output


@FUZZ
@given(device=NAMES.filter(lambda d: d not in ("auto", "cpu", "cuda")))
def test_bad_device(tmp_path, device):
    output = _sweep(tmp_path, device=device)
    assert _names(output, device), output


@FUZZ
@given(name=NAMES.filter(lambda n: n not in ("generic", "medical", "code", "arithmetic") and not n.endswith(".jsonl")))
def test_bad_calibration(tmp_path, name):
    output = _sweep(tmp_path, precisions="w8a8-static", calibration=name)
    assert _names(output, name), output


@FUZZ
@given(data=st.binary(min_size=1, max_size=100))
def test_calibration_file_any_bytes(tmp_path, data):
    path = tmp_path / "set.jsonl"
    path.write_bytes(data)
    try:
        from qeval.calibration import parse_lines

        parse_lines(path, data)
    except Exception:  # noqa: BLE001 -- only files the line check refuses (a valid one would calibrate)
        output = _sweep(tmp_path, precisions="w8a8-static", calibration=str(path))
        assert _names(output, "set.jsonl"), output


@pytest.mark.parametrize("option, value", [
    ("precisions", "[bold]fp32"),
    ("precisions", "fp32[/]"),
    ("device", "[/]"),
    ("suites", "[red]suites"),
])
def test_values_with_rich_markup(tmp_path, option, value):
    output = _sweep(tmp_path, **{option: value})
    assert _names(output, value), output
