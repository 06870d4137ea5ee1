"""``qeval perf``: translates flags into :func:`qeval.perf.run_perf`, nothing more.

Registered on the main app by ``qeval.cli`` through :func:`register`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from qeval import options as opt
from qeval.cli_common import console, engine_executables, split_list, target_options, typer_option, user_errors


@user_errors
def perf(
    model: Annotated[str | None, typer.Option(help="Local HF model folder, or built-in alias (smollm2-135m).")] = None,
    precisions: Annotated[str | None, typer.Option(help="Comma-separated, e.g. bf16,int8,int4; the first is the reference of the ratios.")] = None,
    suite: Annotated[str | None, typer.Option(help="Prompts from this suite folder (built like the accuracy pass).")] = None,
    limit: Annotated[int | None, typer.Option(help="N suite cases, evenly spaced through its cases file; or N synthetic prompts (default 8).")] = None,
    prompt_tokens: Annotated[str | None, typer.Option(help="Synthetic prompts of N tokens (with --output-tokens) instead of a suite; with load levels also a distribution, e.g. lognormal:median=512,p95=2048 or uniform:min=64,max=256.")] = None,
    output_tokens: Annotated[str | None, typer.Option(help="Tokens each request generates at most (overrides the suite's max_new_tokens); with synthetic load levels also a distribution.")] = None,
    batch_sizes: Annotated[str, typer.Option(help="Comma-separated batch sizes of the load profile.")] = "1,8,32",
    requests: Annotated[int, typer.Option(min=1, help="Timed requests per precision and batch size over all rounds, at least (72 bound a p95).")] = 72,
    rounds: Annotated[int, typer.Option(help="Rounds; precisions alternate order (ABBA) round by round.")] = 3,
    warmup: Annotated[int, typer.Option(help="Untimed batch-1 requests per precision before the rounds.")] = 2,
    slo: Annotated[list[str] | None, typer.Option(help="Latency/throughput/memory SLO, e.g. 'p95_ttft_ms <= 300' (repeatable); goodput = highest batch size meeting all.")] = None,
    gpu_hour_usd: Annotated[float | None, typer.Option(help="GPU price per hour: prices a million output tokens at the goodput load.")] = None,
    api_usd_per_1m: Annotated[float | None, typer.Option(help="API price per million tokens, for the break-even volume (needs --gpu-hour-usd).")] = None,
    device: Annotated[str, typer_option(opt.DEVICE)] = opt.DEVICE.cli_default,
    out: Annotated[Path, typer.Option(help="perf.json and perf.md go to OUT/<run-id>/.")] = Path("reports"),
    into: Annotated[Path | None, typer.Option(help="Write perf.json/perf.md into this existing run folder (e.g. a sweep's) instead.")] = None,
    target: Annotated[list[str] | None, typer.Option("--target", help="NAME=SPEC, repeatable (MODEL@PRECISION or openai:URL[#MODEL]); the first is the reference. An endpoint's batch of B is B concurrent streamed requests.")] = None,
    api_key_env: Annotated[list[str] | None, typer_option(opt.API_KEY_ENV)] = opt.API_KEY_ENV.cli_default,
    request_timeout: Annotated[float, typer_option(opt.REQUEST_TIMEOUT)] = opt.REQUEST_TIMEOUT.cli_default,
    engine_arg: Annotated[list[str] | None, typer_option(opt.ENGINE_ARG)] = opt.ENGINE_ARG.cli_default,
    vllm: Annotated[str | None, typer_option(opt.VLLM)] = opt.VLLM.cli_default,
    llamacpp: Annotated[str | None, typer_option(opt.LLAMACPP)] = opt.LLAMACPP.cli_default,
    concurrency: Annotated[str | None, typer.Option(help="Closed-loop load levels: N users each sending its next request when the last ends, e.g. 1,8,32,50.")] = None,
    rate: Annotated[str | None, typer.Option(help="Open-loop load levels in requests/s, e.g. 0.5,1,2,4,inf (inf: all at once).")] = None,
    arrival: Annotated[str, typer.Option(help="Open-loop arrivals: poisson, gamma:CV (CV<1 smoother, >1 burstier) or constant.")] = "poisson",
    max_concurrency: Annotated[int | None, typer.Option(help="Open loop: most requests in flight at once (the client's cap; time held back is reported apart).")] = None,
    duration: Annotated[str | None, typer.Option(help="Load levels: bound each target's level by time (e.g. 60s, 2m; split over rounds) instead of --requests.")] = None,
    workload: Annotated[Path | None, typer.Option(help="Load levels: recorded requests, JSONL (prompt or messages, optional max_tokens and offset_s; see `qeval workload describe`). Offsets without --rate/--concurrency are replayed.")] = None,
    time_scale: Annotated[float, typer.Option(help="Replay a --workload trace's offsets times this (0.5: twice as fast).")] = 1.0,
    unique_prompts: Annotated[bool, typer.Option("--unique-prompts", help="Prefix every request with a nonce, so a server's prefix cache cannot serve a repeated prompt.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of arrival schedules and synthetic lengths.")] = 0,
    tokenizer: Annotated[str | None, typer.Option(help="Endpoint targets: tokenizer (folder, or smollm2-135m) for synthetic --prompt-tokens and for output tokens when the server sends no usage.")] = None,
) -> None:
    """Load-profile targets: latency percentiles, throughput, memory, goodput, cost.

    Batch sizes (default): TTFT/TPOT/ITL/e2e percentiles with 95% intervals, tokens/s and
    requests/s, peak memory per batch size (out-of-memory recorded, not fatal), cold start, the
    highest batch size meeting every --slo, and cost per million output tokens.

    Load levels (--concurrency, --rate, or a timed --workload): the same percentiles under
    closed-loop users or open-loop arrivals, queueing included, with offered vs achieved rate,
    goodput within every --slo, the saturation point, the server's own /metrics and the
    client's own health per level.
    """
    from qeval.perf import (
        PERF_FILE,
        PERF_MARKDOWN,
        PerfConfig,
        parse_batch_sizes,
        run_perf,
    )
    from qeval.quantize import quiet

    from qeval.errors import UsageError

    from qeval.load._arrivals import parse_arrival, parse_concurrency, parse_duration, parse_rates

    targets = target_options(target or [], api_key_env or [], [], model, precisions, engine_arg)
    if not targets and not (model and precisions):
        raise UsageError("Give --model with --precisions, or --target NAME=SPEC (repeatable).")
    prompt_fixed, prompt_spread = _lengths(prompt_tokens, "--prompt-tokens")
    output_fixed, output_spread = _lengths(output_tokens, "--output-tokens")
    config = PerfConfig(
        model=model,
        precisions=split_list(precisions or ""),
        targets=targets,
        request_timeout_s=request_timeout,
        suite=suite,
        limit=limit,
        prompt_tokens=prompt_fixed,
        output_tokens=output_fixed,
        prompt_lengths=prompt_spread,
        output_lengths=output_spread,
        concurrency=parse_concurrency(concurrency) if concurrency else (),
        rates=parse_rates(rate) if rate else (),
        arrival=parse_arrival(arrival),
        max_concurrency=max_concurrency,
        duration_s=parse_duration(duration) if duration else None,
        workload=str(workload) if workload is not None else None,
        time_scale=time_scale,
        unique_prompts=unique_prompts,
        seed=seed,
        tokenizer=tokenizer,
        engine_executables=engine_executables(vllm, llamacpp),
        batch_sizes=parse_batch_sizes(batch_sizes),
        requests=requests,
        rounds=rounds,
        warmup=warmup,
        slos=tuple(slo or ()),
        gpu_hour_usd=gpu_hour_usd,
        api_usd_per_1m=api_usd_per_1m,
        device=device,
        out_dir=str(out),
        into=str(into) if into is not None else None,
    )

    def note(text: str) -> None:
        console.print(text, highlight=False, markup=False)

    with quiet():
        record, folder = run_perf(config, note=note)
    bad = [p for p in record.precisions if p.status != "ok"]
    for p in bad:
        console.print(f"{p.precision}: {p.status} ({p.reason})", highlight=False, markup=False)
    pages = _write_pages(record, Path(folder))
    shown = ", ".join(str(x) for x in (folder / PERF_MARKDOWN, folder / PERF_FILE, *pages))
    console.print(f"Report: {shown}", highlight=False, markup=False)
    if record.incomplete:
        console.print(f"incomplete: {record.incomplete}; what finished is in the report.", highlight=False,
                      markup=False)
        raise typer.Exit(130)


PERF_HTML = "perf.html"


def _write_pages(record: Any, folder: Path) -> list[Path]:
    """perf.html beside perf.md; and, written into a sweep's folder (``--into``), its report.html
    again with this load profile. The pages are views of files already written: a failure here
    is a warning, never the run's end."""
    from qeval.cli_common import err_console
    from qeval.files import atomic_write_text
    from qeval.report._html import HTML_FILE, render_perf_html, write_html

    written: list[Path] = []
    try:
        atomic_write_text(folder / PERF_HTML, render_perf_html(record))
        written.append(folder / PERF_HTML)
        if (folder / "results.json").exists():
            from qeval.report._record import read_record

            written.append(write_html(read_record(folder), folder / HTML_FILE, perf=record))
    except Exception as exc:  # noqa: BLE001 - perf.json and perf.md are already written
        err_console.print(f"warning: an HTML page was not written ({type(exc).__name__}: {exc}).", highlight=False)
    return written


def _lengths(text: str | None, flag: str) -> tuple[int | None, Any]:
    """``--prompt-tokens``/``--output-tokens`` as ``(fixed tokens, None)``, ``(None, distribution)``
    (``lognormal:...``, ``uniform:...``) or ``(None, None)`` when not given."""
    from qeval.load._lengths import parse_lengths

    if text is None:
        return None, None
    spec = parse_lengths(text, flag)
    return (spec.median_tokens, None) if spec.is_fixed else (None, spec)


def register(app: typer.Typer) -> None:
    """Add ``perf`` to ``app`` (the main ``qeval`` app, or a test's)."""
    app.command("perf")(perf)
