"""The option table (qeval.options): the CLI and the pytest plugin offer each shared option with the
table's flag, type, help and default, so the two cannot drift."""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from pytest_qeval.options import OPTIONS as PLUGIN_OPTIONS
from pytest_qeval.options import add_options, read_options
from qeval.cli import app, quantize, sweep
from qeval.cli_perf import perf
from qeval.errors import UsageError
from qeval.options import SHARED_OPTIONS, OptionSpec
from tests.fakes import MINI

COMMANDS = {"sweep": sweep, "perf": perf, "quantize": quantize}
PYTHON_TYPES: dict[str, Any] = {"int": int, "float": float, "str": str, "multi": list[str], "flag": bool}


def _click_options(command: str) -> dict[str, Any]:
    group = typer.main.get_command(app)
    return {flag: param for param in group.commands[command].params for flag in param.opts}  # type: ignore[attr-defined]


def _python_types(fn: Any) -> dict[str, Any]:
    """flag → the parameter's annotated type (``Optional`` removed)."""
    fn = inspect.unwrap(fn)
    hints = typing.get_type_hints(fn, include_extras=True)
    out = {}
    for name, hint in hints.items():
        base, *meta = typing.get_args(hint) or (hint,)
        args = typing.get_args(base)
        if typing.get_origin(base) in (typing.Union, types.UnionType) and type(None) in args:
            base = next(a for a in args if a is not type(None))
        for info in meta:
            for flag in getattr(info, "param_decls", None) or (f"--{name.replace('_', '-')}",):
                out[flag] = base
    return out


def _ids(spec: OptionSpec) -> str:
    return spec.name


def test_every_shared_option_is_in_the_plugin_and_a_command():
    for spec in SHARED_OPTIONS:
        assert "plugin" in spec.applies and spec.applies & set(COMMANDS), spec.name
    assert {s.name for s in SHARED_OPTIONS} <= {o.name for o in PLUGIN_OPTIONS}


@pytest.mark.parametrize("spec", SHARED_OPTIONS, ids=_ids)
def test_the_cli_declares_each_shared_option_as_the_table_says(spec):
    for command in sorted(spec.applies & set(COMMANDS)):
        param = _click_options(command)[f"--{spec.name}"]
        assert param.help == spec.help_for("--"), command
        assert param.default == spec.cli_default, command
        assert param.multiple == (spec.kind == "multi"), command
        assert _python_types(COMMANDS[command])[f"--{spec.name}"] == PYTHON_TYPES[spec.kind], command
    for command in sorted(set(COMMANDS) - spec.applies):
        # perf's --concurrency is its closed-loop load levels, not the accuracy pass's requests in flight
        differs = ("limit", "warmup", "target") + (("concurrency",) if command == "perf" else ())
        assert f"--{spec.name}" not in _click_options(command) or spec.name in differs, (
            f"`qeval {command}` has its own --{spec.name}: add {command!r} to the spec's applies if it means the same"
        )


class _Parser:
    """Records what the plugin registers (pytest's Parser, minus the parsing)."""

    def __init__(self) -> None:
        self.options: dict[str, dict[str, Any]] = {}
        self.ini: dict[str, str] = {}

    def getgroup(self, *args: Any, **kwargs: Any) -> _Parser:
        return self

    def addoption(self, *names: str, **kwargs: Any) -> None:
        self.options[names[0]] = kwargs

    def addini(self, name: str, help: str, **kwargs: Any) -> None:
        self.ini[name] = help


@pytest.mark.parametrize("spec", SHARED_OPTIONS, ids=_ids)
def test_the_plugin_declares_each_shared_option_as_the_table_says(spec):
    parser = _Parser()
    add_options(parser)  # type: ignore[arg-type]
    assert parser.options[f"--qeval-{spec.name}"]["help"] == spec.help_for("--qeval-")
    assert parser.ini[f"qeval_{spec.key}"] == f"qeval: {spec.help_for('--qeval-')}"
    assert (parser.options[f"--qeval-{spec.name}"].get("action") == "append") == (spec.kind == "multi")


def test_the_plugin_defaults_are_the_tables(pytester):
    options = read_options(pytester.parseconfig("--qeval", "--qeval-model", "fake"))
    for spec in SHARED_OPTIONS:
        assert getattr(options, spec.key) == spec.default, spec.name


def test_help_names_other_options_as_each_surface_spells_them():
    from qeval.options import CALIBRATION_SEEDS, TARGET

    assert "--model and --precisions" in TARGET.help_for("--")
    assert "--qeval-model and --qeval-precisions" in TARGET.help_for("--qeval-")
    assert "--qeval-calibration-seed to --qeval-calibration-seed+K-1" in CALIBRATION_SEEDS.help_for("--qeval-")


@pytest.mark.parametrize(
    ("name", "raw", "says"),
    [
        ("limit", "0", "must be at least 1, got 0."),
        ("limit", "ten", "expected a whole number, got 'ten'."),
        ("request-timeout", "0", "must be at least 0.1 seconds"),
        ("device", "tpu", "unknown device 'tpu'; use auto, cpu, cuda."),
        ("calibration-seeds", "0", "must be at least 1, got 0."),
    ],
)
def test_parsing_names_where_the_value_was_set(name, raw, says):
    from qeval.options import shared_option

    with pytest.raises(UsageError, match="^--x: ") as info:
        shared_option(name).parse(raw, "--x")
    assert says in str(info.value)


def test_the_cli_refuses_a_value_with_the_tables_words(tmp_path):
    result = CliRunner().invoke(app, ["sweep", "--model", "fake", "--precisions", "fp32", "--suites", str(MINI),
                                      "--out", str(tmp_path), "--calibration-seeds", "0"])
    assert result.exit_code == 2
    assert "must be at least 1, got 0." in result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert not list(tmp_path.iterdir())
