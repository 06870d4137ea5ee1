"""What every ``qeval`` command shares: the consoles, the user-error wrapper, list options.

Its own module so that the commands defined outside ``qeval.cli`` (perf, recommend)
import it directly instead of reaching back into ``qeval.cli``, which imports them.
"""

from __future__ import annotations

import functools
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from qeval.errors import QevalError
from qeval.options import OptionSpec

# Piped output (CI logs, `make demo | tee`) gets a width the results table fits in.
console = Console() if Console().is_terminal else Console(width=160)
err_console = Console(stderr=True)

EXIT_USAGE = 2


def user_errors(fn):
    """Show a user mistake as one paragraph and exit 2, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except QevalError as exc:
            # escaped: the message quotes user input, which may contain rich markup ("[/]")
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_USAGE) from None

    return wrapper


def typer_option(spec: OptionSpec) -> Any:
    """The typer option for a shared option (:mod:`qeval.options`): its flag, help and parser.

    Declare the parameter as ``name: Annotated[TYPE, typer_option(SPEC)] = SPEC.cli_default``;
    a test checks that TYPE, flag, help and default agree with the spec."""

    def check(value: Any) -> Any:
        # typer has converted the value to the annotated type; the spec checks the rest (minimum, choices)
        problem = spec.check(value)
        if problem is not None:
            raise typer.BadParameter(problem)
        return value

    return typer.Option(f"--{spec.name}", help=spec.help_for("--"), callback=check, metavar=spec.metavar)


def split_list(value: str) -> tuple[str, ...]:
    """``"a, b,,c"`` -> ``("a", "b", "c")``: a comma-separated option."""
    return tuple(v.strip() for v in value.split(",") if v.strip())


def target_options(entries: list[str], key_envs: list[str], revisions: list[str], model: str | None,
                   precisions: str | None, engine_args: list[str] | None = None) -> tuple[Any, ...]:
    """``--target`` options (with ``--api-key-env`` / ``--target-revision`` / ``--engine-arg``) as target specs."""
    from qeval.errors import UsageError
    from qeval.targets import parse_assignments, parse_target, with_options

    if not entries:
        if key_envs or revisions or engine_args:
            raise UsageError("--api-key-env, --target-revision and --engine-arg apply to targets: give them with "
                             "--target NAME=SPEC.")
        return ()
    if model or precisions:
        raise UsageError("Give either --target NAME=SPEC (repeatable) or --model with --precisions, not both: "
                         "--model M --precisions a,b means --target a=M@a --target b=M@b.")
    specs = [parse_target(e) for e in entries]
    return with_options(specs, parse_assignments(key_envs, "--api-key-env", "VAR"),
                        parse_assignments(revisions, "--target-revision", "REV"), engine_args=engine_args or ())


def engine_executables(vllm: str | None, llamacpp: str | None) -> tuple[tuple[str, str], ...]:
    """``--vllm`` / ``--llamacpp`` as the config's ``(engine, executable)`` pairs."""
    return tuple((name, str(value)) for name, value in (("vllm", vllm), ("llamacpp", llamacpp)) if value)
