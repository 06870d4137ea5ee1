"""The ``qeval`` command line: translates flags into library calls, nothing more."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rich.markup import escape

from qeval import options as opt
from qeval.cli_common import console, engine_executables, err_console, target_options, typer_option
from qeval.cli_common import split_list as _split
from qeval.cli_common import user_errors as _user_errors

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Quantize a model at several precisions, evaluate suites, measure latency and memory, report.",
    pretty_exceptions_enable=False,
)
suites_app = typer.Typer(no_args_is_help=True, help="Work with suite folders.")
app.add_typer(suites_app, name="suites")

class _RichReporter:
    def __init__(self, progress) -> None:
        self._progress = progress
        self._task = None

    def task(self, description: str, total: int) -> None:
        # Started on first use, so a run that fails validation prints only its error.
        if not self._progress.live.is_started:
            self._progress.start()
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(description, total=total)

    def stop(self) -> None:
        if self._progress.live.is_started:
            self._progress.stop()

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)

    def note(self, text: str) -> None:
        self._progress.console.print(text, highlight=False)


@app.command()
@_user_errors
def sweep(
    model: Annotated[Optional[str], typer.Option(help="Local HF model folder, or built-in alias (smollm2-135m).")] = None,
    precisions: Annotated[Optional[str], typer.Option(help="Comma-separated, e.g. bf16,int8,int4 (see `qeval precisions`).")] = None,
    suites: Annotated[Optional[str], typer.Option(help="Comma-separated suite folders, or folders holding suites.")] = None,
    limit: Annotated[Optional[int], typer_option(opt.LIMIT)] = opt.LIMIT.cli_default,
    device: Annotated[str, typer_option(opt.DEVICE)] = opt.DEVICE.cli_default,
    out: Annotated[Path, typer.Option(help="Reports go to OUT/<run-id>/.")] = Path("reports"),
    latency_samples: Annotated[int, typer_option(opt.LATENCY_SAMPLES)] = opt.LATENCY_SAMPLES.cli_default,
    warmup: Annotated[int, typer_option(opt.WARMUP)] = opt.WARMUP.cli_default,
    batch_size: Annotated[Optional[int], typer_option(opt.BATCH_SIZE)] = opt.BATCH_SIZE.cli_default,
    calibration: Annotated[Optional[str], typer_option(opt.CALIBRATION)] = opt.CALIBRATION.cli_default,
    calibration_samples: Annotated[int, typer_option(opt.CALIBRATION_SAMPLES)] = opt.CALIBRATION_SAMPLES.cli_default,
    calibration_seed: Annotated[int, typer_option(opt.CALIBRATION_SEED)] = opt.CALIBRATION_SEED.cli_default,
    calibration_seeds: Annotated[int, typer_option(opt.CALIBRATION_SEEDS)] = opt.CALIBRATION_SEEDS.cli_default,
    resume: Annotated[Optional[Path], typer.Option(help="Finish the killed or interrupted sweep in this run folder (reports/<run-id>/) from its journal; every other option comes from the journal, except where the rest runs (--executor, --ray-address, --ray-resources).")] = None,
    target: Annotated[Optional[list[str]], typer_option(opt.TARGET)] = opt.TARGET.cli_default,
    api_key_env: Annotated[Optional[list[str]], typer_option(opt.API_KEY_ENV)] = opt.API_KEY_ENV.cli_default,
    target_revision: Annotated[Optional[list[str]], typer_option(opt.TARGET_REVISION)] = opt.TARGET_REVISION.cli_default,
    concurrency: Annotated[int, typer_option(opt.CONCURRENCY)] = opt.CONCURRENCY.cli_default,
    request_timeout: Annotated[float, typer_option(opt.REQUEST_TIMEOUT)] = opt.REQUEST_TIMEOUT.cli_default,
    no_latency_pairing: Annotated[bool, typer_option(opt.NO_LATENCY_PAIRING)] = opt.NO_LATENCY_PAIRING.cli_default,
    tokenizer: Annotated[Optional[Path], typer.Option(help="Endpoint targets: tokenizer folder to count output tokens with when the server sends no usage.")] = None,
    engine_arg: Annotated[Optional[list[str]], typer_option(opt.ENGINE_ARG)] = opt.ENGINE_ARG.cli_default,
    vllm: Annotated[Optional[str], typer_option(opt.VLLM)] = opt.VLLM.cli_default,
    llamacpp: Annotated[Optional[str], typer_option(opt.LLAMACPP)] = opt.LLAMACPP.cli_default,
    executor: Annotated[str, typer_option(opt.EXECUTOR)] = opt.EXECUTOR.cli_default,
    ray_address: Annotated[str, typer_option(opt.RAY_ADDRESS)] = opt.RAY_ADDRESS.cli_default,
    ray_resources: Annotated[Optional[list[str]], typer_option(opt.RAY_RESOURCES)] = opt.RAY_RESOURCES.cli_default,
) -> None:
    """Evaluate and measure each target (MODEL at each precision, or --target NAME=SPEC) on each suite; write a report.

    Ctrl-C finishes the current batch, writes the report marked incomplete and exits 130;
    `qeval sweep --resume RUN_DIR` then continues without redoing finished work."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from qeval.config import SweepConfig
    from qeval.errors import UsageError
    from qeval.quantize import quiet
    from qeval.report import render_console_table
    from qeval.report._decision import decide_run, render_decision_console
    from qeval.resume import resume_sweep
    from qeval.sweep import SweepInterrupted, run_sweep

    targets = target_options(target or [], api_key_env or [], target_revision or [], model, precisions, engine_arg)
    if resume is None and not targets and not (model and precisions and suites):
        missing = [f"--{n}" for n, v in (("model", model), ("precisions", precisions), ("suites", suites)) if not v]
        raise UsageError(f"Missing {', '.join(missing)}: a sweep needs --model, --precisions and --suites, or "
                         "--target NAME=SPEC (repeatable) and --suites (or --resume RUN_DIR to finish an interrupted one).")
    if resume is None and not suites:
        raise UsageError("Missing --suites: e.g. --suites suites/arithmetic,suites/medical.")
    if resume is not None and (model or precisions or suites or targets):
        raise UsageError("--resume takes its targets and suites from the run's journal; "
                         "leave out --model, --precisions, --target and --suites.")
    config = None if resume is not None else SweepConfig(
        model=model,
        precisions=_split(precisions or ""),
        suites=_split(suites or ""),
        device=device,
        limit=limit,
        latency_samples=latency_samples,
        warmup_requests=warmup,
        batch_size=batch_size,
        out_dir=str(out),
        calibration=calibration,
        calibration_samples=calibration_samples,
        calibration_seed=calibration_seed,
        calibration_seeds=calibration_seeds,
        targets=targets,
        concurrency=concurrency,
        request_timeout_s=request_timeout,
        tokenizer=str(tokenizer) if tokenizer else None,
        pair_latency=not no_latency_pairing,
        engine_executables=engine_executables(vllm, llamacpp),
        executor=executor,
        ray_address=ray_address,
        ray_resources=tuple(ray_resources or ()),
    )
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    reporter = _RichReporter(progress)
    try:
        with quiet():
            if resume is not None:
                # where the rest runs is chosen now (--executor), not by the run that was interrupted
                record, path = resume_sweep(resume, reporter=reporter, executor=(executor, ray_address,
                                                                                  tuple(ray_resources or ())))
            else:
                assert config is not None  # built above whenever --resume is not given
                record, path = run_sweep(config, reporter=reporter)
    except SweepInterrupted as stop:
        reporter.stop()
        err_console.print(
            f"interrupted: partial report (marked incomplete) in {stop.path}; "
            f"finish it with: qeval sweep --resume {stop.path}", highlight=False, soft_wrap=True,
        )
        raise typer.Exit(130) from None
    finally:
        reporter.stop()
    console.print(render_console_table(record))
    console.print(render_decision_console(decide_run(record)))
    console.print(f"Report: [bold]{path}[/] (report.html, summary.md, results.json, samples.jsonl, plots)")
    failed = [c for c in record.cells if c.status == "failed"]
    if failed:
        console.print(f"[yellow]{len(failed)} cell(s) failed; their reasons are in the report.[/]")
    for cell in record.cells:
        if cell.status == "ok" and cell.reason:  # ran, with something to say (failed requests, a timed pass that broke)
            console.print(f"[yellow]note[/] {escape(cell.precision)} × {escape(cell.suite)}: {escape(cell.reason)}",
                          highlight=False, soft_wrap=True)


@app.command("precisions")
@_user_errors
def list_precisions_cmd(
    device: Annotated[str, typer.Option(help="Check availability for auto, cpu or cuda.")] = "auto",
) -> None:
    """List every precision and whether it can run on this machine."""
    from rich.table import Table

    from qeval.models import resolve_device
    from qeval.quantize import list_precisions

    dev = resolve_device(device)
    table = Table(title=f"Precisions on this machine ({dev})")
    table.add_column("precision")
    table.add_column("what")
    table.add_column("available")
    for name, description, reason in list_precisions(dev):
        table.add_row(name, description, "[green]yes[/]" if reason is None else f"[yellow]no[/]: {reason}")
    console.print(table)


@suites_app.command("validate")
@_user_errors
def validate_suites(paths: Annotated[list[Path], typer.Argument(help="Suite folders to check.")]) -> None:
    """Load each suite and report problems (file, line, key)."""
    from qeval.suites import load_suite

    for path in paths:
        suite = load_suite(path)
        console.print(f"[green]ok[/] {path}: {len(suite.cases)} cases, scorer {suite.scorer().name}")


@app.command()
@_user_errors
def compare(
    baseline: Annotated[Path, typer.Argument(help="Baseline run: a record file, a run folder or its results.json.")],
    current: Annotated[Path, typer.Argument(help="Current run: a record file, a run folder or its results.json.")],
    allow_env_mismatch: Annotated[
        bool, typer.Option("--allow-env-mismatch", help="Compare latency even when the environment fingerprints differ.")
    ] = False,
    latency_tolerance: Annotated[
        float, typer.Option(min=0.0, help="Relative slow-down (0.1 = 10%) a significant latency change must exceed to regress.")
    ] = 0.10,
    out: Annotated[Optional[Path], typer.Option(help="Also write regression.md and regression.json into this folder.")] = None,
) -> None:
    """Compare CURRENT against BASELINE; exit 1 on a regression, 0 otherwise."""
    from qeval.compare import compare_runs
    from qeval.report import read_record, render_comparison_text, write_comparison

    comparison = compare_runs(
        read_record(baseline), read_record(current),
        allow_env_mismatch=allow_env_mismatch, latency_tolerance=latency_tolerance,
    )
    typer.echo(render_comparison_text(comparison), nl=False)
    if out is not None:
        md_path, json_path = write_comparison(comparison, out)
        typer.echo(f"Report: {md_path}, {json_path}")
    raise typer.Exit(1 if comparison.regressed else 0)


def main() -> None:
    """Console-script entry point; the process ends without the interpreter's teardown
    (:mod:`qeval.fast_exit`: ~1.8 s saved once torch is loaded)."""
    from qeval.fast_exit import exit_code, exit_now

    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exit_code(exc)
    except KeyboardInterrupt:
        err_console.print("interrupted: finished work is in the report folder's journal.jsonl; "
                          "finish it with: qeval sweep --resume RUN_DIR")
        code = 130
    exit_now(code)


@app.command()
@_user_errors
def quantize(
    model: Annotated[str, typer.Option(help="Local HF model folder, or built-in alias (smollm2-135m).")],
    precision: Annotated[str, typer.Option(help="A calibrated checkpoint precision: gptq-int4 or gptq-int8.")],
    out: Annotated[Path, typer.Option(help="Checkpoint folder to write; must be new or empty unless --force.")],
    calibration: Annotated[str | None, typer_option(opt.CALIBRATION)] = opt.CALIBRATION.cli_default,
    calibration_samples: Annotated[int, typer_option(opt.CALIBRATION_SAMPLES)] = opt.CALIBRATION_SAMPLES.cli_default,
    calibration_seed: Annotated[int, typer_option(opt.CALIBRATION_SEED)] = opt.CALIBRATION_SEED.cli_default,
    device: Annotated[str, typer_option(opt.DEVICE)] = opt.DEVICE.cli_default,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists and is not empty.")] = False,
) -> None:
    """Quantize MODEL once and write a reusable GPTQ checkpoint to OUT (evaluate it with --precisions as-is)."""
    from qeval.checkpoint import QuantizeJob, write_checkpoint
    from qeval.quantize import quiet

    job = QuantizeJob(
        model=model, precision=precision, out=out, calibration=calibration, calibration_samples=calibration_samples,
        calibration_seed=calibration_seed, device=device, force=force,
    )
    with quiet():
        done = write_checkpoint(job)
    cal = done.calibration
    took = f"{done.quantize_seconds:.1f} s" if done.quantize_seconds is not None else "time not recorded"
    if done.quantize_peak_bytes:
        took += f", peak {done.quantize_peak_bytes / 1e6:,.0f} MB"
    if done.cache == "hit":
        took = f"reused from the cache of an earlier run (which took {took})"
    console.print(f"Wrote [bold]{done.path}[/]: {done.description}", highlight=False)
    console.print(f"  quantize: {took}; load, quantize and write: {done.wall_seconds:.1f} s", highlight=False)
    console.print(f"  size on disk: {done.size_bytes / 1e6:,.1f} MB", highlight=False)
    console.print(
        f"  calibration: {cal.get('name')}, {cal.get('samples')} texts (seed {cal.get('seed')}), "
        f"sample sha256 {str(cal.get('sample_hash'))[:16]}", highlight=False,
    )
    console.print(f"Evaluate it: qeval sweep --model {done.path} --precisions as-is --suites SUITES", highlight=False)


def _register_commands() -> None:
    # perf, recommend and workload live in their own modules; they import this one lazily.
    from qeval.cli_perf import register as register_perf
    from qeval.cli_recommend import register as register_recommend
    from qeval.cli_workload import register as register_workload

    register_perf(app)
    register_recommend(app)
    register_workload(app)


_register_commands()

if __name__ == "__main__":
    main()
