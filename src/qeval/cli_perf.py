"""``qeval perf``: translates flags into :func:`qeval.perf.run_perf`, nothing more.

Registered on the main app by ``qeval.cli`` through :func:`register`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qeval import options as opt
from qeval.cli_common import console, split_list, target_options, typer_option, user_errors


@user_errors
def perf(
    model: Annotated[str | None, typer.Option(help="Local HF model folder, or built-in alias (smollm2-135m).")] = None,
    precisions: Annotated[str | None, typer.Option(help="Comma-separated, e.g. bf16,int8,int4; the first is the reference of the ratios.")] = None,
    suite: Annotated[str | None, typer.Option(help="Prompts from this suite folder (built like the accuracy pass).")] = None,
    limit: Annotated[int | None, typer.Option(help="N suite cases, evenly spaced through its cases file; or N synthetic prompts (default 8).")] = None,
    prompt_tokens: Annotated[int | None, typer.Option(help="Synthetic prompts of N tokens (with --output-tokens) instead of a suite.")] = None,
    output_tokens: Annotated[int | None, typer.Option(help="Tokens each request generates at most (overrides the suite's max_new_tokens).")] = None,
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
) -> None:
    """Load-profile MODEL at each precision and batch size: latency percentiles, throughput, memory, goodput, cost.

    TTFT/TPOT/ITL/e2e percentiles with 95% intervals, tokens/s and requests/s, peak
    memory per batch size (out-of-memory recorded, not fatal), cold start, the highest
    batch size meeting every --slo, and cost per million output tokens.
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

    targets = target_options(target or [], api_key_env or [], [], model, precisions)
    managed = [t.name for t in targets if t.managed]
    if managed:
        raise UsageError(f"--target {', '.join(managed)}: qeval perf keeps every target loaded at once to interleave "
                         "them, and runs no managed server yet. Evaluate managed targets with qeval sweep, or start "
                         "the server yourself and give it as openai:URL.")
    if not targets and not (model and precisions):
        raise UsageError("Give --model with --precisions, or --target NAME=SPEC (repeatable).")
    config = PerfConfig(
        model=model,
        precisions=split_list(precisions or ""),
        targets=targets,
        request_timeout_s=request_timeout,
        suite=suite,
        limit=limit,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
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
    console.print(f"Report: {folder / PERF_MARKDOWN}, {folder / PERF_FILE}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add ``perf`` to ``app`` (the main ``qeval`` app, or a test's)."""
    app.command("perf")(perf)
