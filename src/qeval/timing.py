"""The timed pass: batch-1 greedy requests, warm, separate from the accuracy pass.

Definitions (docs/metrics.md): TTFT = request start (after tokenization) to the
first generated token; TPOT = (e2e - TTFT) / (tokens - 1) for requests with >= 2
tokens; ITL = every gap between consecutive tokens, pooled; e2e = start to last
token; throughput = output tokens of the timed requests / wall time of the pass.

:func:`paired_timed_pass` alternates the target's requests with a reference target's on
the same cases (ABBA: R T T R R T ...), so a latency ratio between the two is measured in
one window: a neighbour that starts halfway slows both sides of every later pair alike.
Every pass records the machine's background load (:mod:`qeval.background`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from qeval.generation import GenerationSettings
from qeval.background import watch
from qeval.models import Prompt, TextModel, TimedGeneration
from qeval.results import LatencyStats, PairedLatency, PairedSamples
from qeval.stats import percentiles


@dataclass(frozen=True)
class TimedPass:
    latency: LatencyStats
    case_ids: tuple[str, ...]


def sample_indices(n_cases: int, samples: int, warmup: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """Seeded choice of warm-up and timed case indices.

    Timed cases are distinct while there are enough; past ``n_cases`` the same
    shuffled order repeats, so a tail percentile can get the samples it needs
    (a p95 needs 72 to be bounded at all) from a short suite.
    """
    order = list(range(n_cases))
    random.Random(seed).shuffle(order)
    timed = [order[i % n_cases] for i in range(samples)] if n_cases else []
    rest = order[samples:] or order
    warm = [rest[i % len(rest)] for i in range(warmup)] if n_cases else []
    return warm, timed


def figures(r: TimedGeneration) -> dict[str, float]:
    """A request's ``ttft``, ``tpot`` and ``e2e`` in ms (those it has: none when it failed or
    produced nothing, no ``tpot`` below two tokens)."""
    times = r.token_times_ms
    if getattr(r, "error_kind", None) is not None or not times:
        return {}
    out = {"ttft": times[0], "e2e": times[-1]}
    # in-process, one timestamp per token; from a stream, one per chunk (tokens from usage)
    source = getattr(r, "token_source", "ids")
    steps = (len(times) if source == "ids" else max(len(times), int(r.output_tokens))) - 1
    if steps >= 1 and len(times) >= 2:
        out["tpot"] = (times[-1] - times[0]) / steps
    return out


def summarise(requests: Sequence[TimedGeneration], wall_s: float, warmup_requests: int) -> LatencyStats:
    """Pure: turn per-request token timestamps into latency statistics.

    A request that failed for good is counted in ``errors`` and in no latency figure. TPOT is
    (e2e - TTFT) / (output tokens - 1): from an endpoint, a stream chunk may carry several
    tokens, so the divisor is the token count (the server's ``usage`` where it sent one), not
    the number of chunks; ITL stays the gap between chunks, as served."""
    ttft: list[float] = []
    tpot: list[float] = []
    itl: list[float] = []
    e2e: list[float] = []
    tok: list[float] = []
    overhead: list[float] = []
    tokens = 0
    per_request = []
    kinds: dict[str, int] = {}
    sources: list[str] = []
    for r in requests:
        error_kind = getattr(r, "error_kind", None)
        if error_kind is not None:
            kinds[error_kind] = kinds.get(error_kind, 0) + 1
            continue
        source = getattr(r, "token_source", "ids")
        if source not in sources:
            sources.append(source)
        overhead_ms = getattr(r, "client_overhead_ms", None)
        if overhead_ms is not None:
            overhead.append(float(overhead_ms))
        tok.append(r.tokenize_ms)
        times = r.token_times_ms
        tokens += r.output_tokens
        per_request.append(int(r.output_tokens))
        got = figures(r)
        if not got:
            continue
        ttft.append(got["ttft"])
        e2e.append(got["e2e"])
        itl.extend(b - a for a, b in zip(times, times[1:]))
        if "tpot" in got:
            tpot.append(got["tpot"])
    return LatencyStats(
        ttft_ms=percentiles(ttft),
        tpot_ms=percentiles(tpot),
        itl_ms=percentiles(itl),
        e2e_ms=percentiles(e2e),
        tokenize_ms=percentiles(tok),
        output_tokens_per_s=(tokens / wall_s) if wall_s > 0 and len(requests) > sum(kinds.values()) else None,
        requests=len(requests) - sum(kinds.values()),
        warmup_requests=warmup_requests,
        output_tokens=tokens,
        samples_ms={"ttft": tuple(ttft), "tpot": tuple(tpot), "itl": tuple(itl), "e2e": tuple(e2e), "tokenize": tuple(tok)},
        request_tokens=tuple(per_request),
        errors=sum(kinds.values()),
        error_kinds=kinds,
        token_source="+".join(sources) if sources else "ids",
        client_overhead_ms=percentiles(overhead) if overhead else None,
    )


def timed_pass(
    model: TextModel,
    prompts: Sequence[Prompt],
    case_ids: Sequence[str],
    settings: GenerationSettings,
    samples: int,
    warmup: int,
    progress=None,
    remote: bool = False,
) -> TimedPass:
    """Run ``warmup`` untimed requests, then ``samples`` timed batch-1 requests.

    ``remote``: the model is an endpoint (its server's work may run on this machine, so the
    background load is judged from quiet probes around the pass)."""
    warm_idx, timed_idx = sample_indices(len(prompts), samples, warmup)
    for i in warm_idx:
        model.generate_timed(prompts[i], settings)
    requests = []
    with watch(remote) as meter:
        start = time.perf_counter()
        for i in timed_idx:
            requests.append(model.generate_timed(prompts[i], settings))
            if progress is not None:
                progress(1)
        wall_s = time.perf_counter() - start
    latency = summarise(requests, wall_s, warmup_requests=len(warm_idx))
    return TimedPass(
        latency=replace(latency, background=meter.load),
        case_ids=tuple(case_ids[i] for i in timed_idx),
    )


def paired_timed_pass(
    model: TextModel,
    prompts: Sequence[Prompt],
    reference: TextModel,
    reference_prompts: Sequence[Prompt],
    reference_name: str,
    case_ids: Sequence[str],
    settings: GenerationSettings,
    samples: int,
    warmup: int,
    progress=None,
    remote: bool = False,
) -> TimedPass:
    """:func:`timed_pass` with each timed request paired with the reference's request for the same
    case, in ABBA order (pair 0: reference then target, pair 1: target then reference, ...).

    ``prompts[i]`` and ``reference_prompts[i]`` are case ``case_ids[i]`` as each model runs it.
    The target's statistics are its own requests' (throughput: its tokens over the time its own
    requests took); :attr:`LatencyStats.paired` keeps both sides of every answered pair."""
    warm_idx, timed_idx = sample_indices(len(prompts), samples, warmup)
    for i in warm_idx:
        reference.generate_timed(reference_prompts[i], settings)
        model.generate_timed(prompts[i], settings)
    mine: list[TimedGeneration] = []
    theirs: list[TimedGeneration] = []
    own_s = 0.0
    with watch(remote) as meter:
        for k, i in enumerate(timed_idx):
            for side in (("reference", "target") if k % 2 == 0 else ("target", "reference")):
                if side == "reference":
                    theirs.append(reference.generate_timed(reference_prompts[i], settings))
                else:
                    start = time.perf_counter()
                    mine.append(model.generate_timed(prompts[i], settings))
                    own_s += time.perf_counter() - start
            if progress is not None:
                progress(1)
    latency = summarise(mine, own_s, warmup_requests=len(warm_idx))
    return TimedPass(
        latency=replace(latency, background=meter.load, paired=pair_up(mine, theirs, reference_name)),
        case_ids=tuple(case_ids[i] for i in timed_idx),
    )


def pair_up(target: Sequence[TimedGeneration], reference: Sequence[TimedGeneration], name: str) -> PairedLatency:
    """Pure: both sides of every pair in which both requests were answered, per measure."""
    columns: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in ("ttft", "tpot", "e2e")}
    pairs = 0
    for mine, theirs in zip(target, reference, strict=True):
        a, b = figures(mine), figures(theirs)
        if not a or not b:
            continue
        pairs += 1
        for kind, (ours, refs) in columns.items():
            if kind in a and kind in b:
                ours.append(a[kind])
                refs.append(b[kind])
    return PairedLatency(
        reference=name, pairs=pairs,
        samples_ms={k: PairedSamples(tuple(t), tuple(r)) for k, (t, r) in columns.items()},
    )
