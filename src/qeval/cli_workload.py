"""``qeval workload``: look at a recorded workload (a JSONL trace) before replaying it.
Translates flags into :func:`qeval.load._workload.describe` and prints what it returns.

Registered on the main app by ``qeval.cli`` through :func:`register`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from qeval.cli_common import console, user_errors

if TYPE_CHECKING:
    from qeval.load._workload import LengthSummary, WorkloadDescription

workload_app = typer.Typer(no_args_is_help=True, help="Look at recorded workloads (JSONL traces of requests).")


def register(app: typer.Typer) -> None:
    """Add ``workload`` to the qeval app."""
    app.add_typer(workload_app, name="workload")


@workload_app.command("describe")
@user_errors
def describe(
    file: Annotated[Path, typer.Argument(help="JSONL trace: one request per line, \"prompt\" or \"messages\", "
                                              "optional max_tokens, offset_s or timestamp.")],
    tokenizer: Annotated[str | None, typer.Option(help="Count prompt tokens with this tokenizer: a local HF model "
                                                       "folder, or built-in alias (smollm2-135m).")] = None,
) -> None:
    """Request count, prompt and output lengths, arrival rate and burstiness of a recorded workload."""
    from qeval.load._workload import describe as describe_workload
    from qeval.load._workload import read_workload

    workload = read_workload(file)
    count_tokens = token_counter(tokenizer) if tokenizer is not None else None
    print_description(describe_workload(workload, count_tokens))


def token_counter(spec: str) -> Callable[[str], int]:
    """Tokens in a text (no special tokens added) by the tokenizer of a local HF folder or a built-in alias."""
    from qeval.errors import UsageError
    from qeval.models._builtin import BUILTINS, materialise
    from qeval.models._hf import _first_line, _quiet_transformers

    folder = materialise(BUILTINS[spec]) if spec in BUILTINS else Path(spec).expanduser()
    if not folder.is_dir():
        raise UsageError(f"--tokenizer {spec}: no such folder, and not a built-in alias ({', '.join(BUILTINS)}). "
                         "Give a local Hugging Face model folder with tokenizer files, or leave --tokenizer out "
                         "to count characters.")
    _quiet_transformers()
    from transformers import AutoTokenizer

    try:
        loaded = AutoTokenizer.from_pretrained(folder)
    except Exception as exc:  # noqa: BLE001 -- transformers' many failure types become one user-facing error
        raise UsageError(f"--tokenizer {spec}: cannot load a tokenizer from {folder} ({_first_line(exc)}). The "
                         "folder needs tokenizer.json and tokenizer_config.json (tokenizer.save_pretrained writes "
                         "them).") from None
    return lambda text: len(loaded(text, add_special_tokens=False).input_ids)


def print_description(d: WorkloadDescription) -> None:
    """The description as a lengths table and an arrivals table."""
    raw = d.requests - d.chat_requests
    console.print(f"[bold]{escape(d.source)}[/]: {d.requests} requests ({d.chat_requests} chat, {raw} raw prompt)",
                  highlight=False)
    lengths = Table(title="Lengths", title_justify="left")
    for column in ("", "p50", "p90", "p99", "max"):
        lengths.add_column(column, justify="left" if not column else "right")
    lengths.add_column("unit")
    _length_row(lengths, "prompt", d.prompt_lengths)
    if d.output_lengths is not None:
        _length_row(lengths, "output", d.output_lengths)
    else:
        lengths.add_row("output", "-", "-", "-", "-", "not recorded (no output_tokens or max_tokens on every line)")
    console.print(lengths)
    if d.duration_s is None:
        console.print("Arrivals: not recorded (no offset_s or timestamp); give the load with --rate or --concurrency.",
                      highlight=False)
        return
    arrivals = Table(title="Arrivals", title_justify="left", show_header=False)
    arrivals.add_column()
    arrivals.add_column()
    arrivals.add_row("first to last", f"{d.duration_s:.3g} s")
    if d.mean_rate_per_s is not None:
        rate = "all at once" if math.isinf(d.mean_rate_per_s) else f"{d.mean_rate_per_s:.3g} req/s"
        arrivals.add_row("mean rate", rate)
    cv = f"{d.gap_cv:.2f}" if d.gap_cv is not None else "- (too few requests)"
    arrivals.add_row("gap CV", f"{cv}  (~1 Poisson, >1 bursty, <1 smoother, 0 evenly spaced)")
    if d.suggestion is not None:
        arrivals.add_row("synthetic load like it", d.suggestion)
    console.print(arrivals)


def _length_row(table: Table, name: str, summary: LengthSummary) -> None:
    values = (summary.p50, summary.p90, summary.p99, summary.max)
    table.add_row(name, *(f"{v:,.0f}" if v == int(v) else f"{v:,.1f}" for v in values), summary.unit)
