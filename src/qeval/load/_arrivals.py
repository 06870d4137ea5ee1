"""When open-loop requests are sent, and the load flags that say so (``--arrival``, ``--rate``,
``--concurrency``, ``--duration``). Pure: no clock, no I/O; a seed reproduces a schedule exactly."""

from __future__ import annotations

import math
import re

import numpy as np

from qeval.errors import UsageError
from qeval.load._types import ArrivalSpec

_ARRIVAL_EXAMPLE = "e.g. --arrival poisson, --arrival constant or --arrival gamma:2 (gaps with CV 2: burstier)"


def parse_arrival(text: str) -> ArrivalSpec:
    """``"poisson"``, ``"constant"``, ``"gamma:CV"`` or ``"gamma:cv=CV"`` (CV a finite positive
    number: the coefficient of variation of the gaps between requests)."""
    shape, _, arg = text.strip().lower().partition(":")
    shape = shape.strip()
    if shape == "poisson" and not arg:
        return ArrivalSpec(shape="poisson")
    if shape == "constant" and not arg:
        return ArrivalSpec(shape="constant")
    if shape in ("poisson", "constant"):
        raise UsageError(f"--arrival {text!r}: {shape} takes nothing after a colon; {_ARRIVAL_EXAMPLE}.")
    if shape != "gamma":
        raise UsageError(f"--arrival {text!r}: not an arrival shape; {_ARRIVAL_EXAMPLE}.")
    key, eq, value = arg.partition("=")
    if eq and key.strip() == "cv":
        arg = value
    try:
        cv = float(arg)
    except ValueError:
        raise UsageError(f"--arrival {text!r}: gamma needs the gaps' CV as a number after the colon, "
                         f"e.g. --arrival gamma:2 (burstier than Poisson) or gamma:0.5 (smoother).") from None
    if not (math.isfinite(cv) and cv > 0):
        raise UsageError(f"--arrival {text!r}: the CV must be a finite number above 0 (1 is Poisson; "
                         "--arrival constant is CV 0), e.g. --arrival gamma:2.")
    return ArrivalSpec(shape="gamma", cv=cv)


def parse_rates(text: str) -> tuple[float, ...]:
    """``"0.5,1,2,4,inf"`` -> ``(0.5, 1.0, 2.0, 4.0, inf)``: requests per second, each above 0
    (``inf``: every request at once), sorted ascending, each once."""
    rates = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            rate = float(part)
        except ValueError:
            raise UsageError(f"--rate {text!r}: {part!r} is not a number; give requests per second separated by "
                             "commas, e.g. --rate 0.5,1,2,4,inf.") from None
        if math.isnan(rate) or rate <= 0:
            raise UsageError(f"--rate {text!r}: {part!r} is not a rate above 0; e.g. --rate 0.5,1,2,4,inf.")
        if math.isinf(rate) and part.lower().lstrip("+") not in ("inf", "infinity"):
            # "1e999" overflows to inf; an unbounded rate should be asked for by name
            raise UsageError(f"--rate {text!r}: {part!r} is too large; write inf for every request at once.")
        rates.append(rate)
    if not rates:
        raise UsageError("--rate is empty; give requests per second separated by commas, e.g. --rate 0.5,1,2,4,inf.")
    return tuple(sorted(set(rates)))


def parse_concurrency(text: str) -> tuple[int, ...]:
    """``"1,8,32,50"`` -> ``(1, 8, 32, 50)``: positive whole numbers of users, ascending, each once."""
    return parse_positive_ints(text, "--concurrency", "number of users")


def parse_positive_ints(text: str, flag: str, what: str) -> tuple[int, ...]:
    """``"1,8,32"`` -> ``(1, 8, 32)``: positive whole numbers, sorted ascending, each once; a
    :class:`UsageError` naming ``flag`` otherwise (``what``: "batch size", "number of users")."""
    values = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise UsageError(f"{flag} {text!r}: {part!r} is not a whole number; give positive integers "
                             f"separated by commas, e.g. {flag} 1,8,32.") from None
        if value < 1:
            raise UsageError(f"{flag} {text!r}: {value} is not a positive {what}; e.g. {flag} 1,8,32.")
        values.append(value)
    if not values:
        raise UsageError(f"{flag} is empty; give positive integers separated by commas, e.g. {flag} 1,8,32.")
    return tuple(sorted(set(values)))


_DURATION = re.compile(r"(?P<number>(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*(?P<unit>ms|s|m|min|h)?")
_SECONDS_PER_UNIT = {"ms": 1e-3, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """``"60s"``, ``"2m"``, ``"1.5m"``, ``"500ms"``, ``"1h"`` or a bare number of seconds
    (``"90"``) -> seconds, finite and above 0."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise UsageError(f"--duration {text!r}: not a duration; write a number with ms, s, m or h, "
                         "e.g. --duration 60s, 2m, 1.5m or 500ms (a bare number is seconds).")
    seconds = float(match["number"]) * _SECONDS_PER_UNIT[match["unit"]]
    if not (math.isfinite(seconds) and seconds > 0):
        raise UsageError(f"--duration {text!r}: must be a finite time above 0, e.g. --duration 60s.")
    return seconds


def arrival_offsets(rate_per_s: float, spec: ArrivalSpec, n: int, seed: int) -> tuple[float, ...]:
    """The send times of ``n`` open-loop requests, in seconds from the level's start:
    non-decreasing, the i-th one the sum of the first i gaps.

    The gaps are gamma-distributed with mean ``1/rate_per_s`` and coefficient of variation
    ``spec.cv``: shape ``k = 1/cv**2``, scale ``1/(rate_per_s*k)``. This is vLLM's
    ``vllm bench serve --burstiness k`` (``get_request`` in vllm/benchmarks/serve.py,
    vllm-project/vllm 009e6d4a: ``np.random.gamma(shape=burstiness, scale=1/(rate*burstiness))``).
    ``poisson`` is ``k = 1`` (exponential gaps, the same draws as ``gamma:1`` for a seed),
    ``constant`` gaps are exactly ``1/rate_per_s``, and ``rate_per_s = inf`` sends all at once
    (all zeros).

    The first request waits one gap, as in that vLLM: it sums the gaps from the first one
    on, so n requests span n/rate on average (a Poisson process watched from time 0). Older
    vLLM benchmark_serving.py sent the first request at once instead. Unlike vLLM we do not
    rescale the offsets so the last one lands exactly on n/rate: that makes the gaps
    dependent and, for a few requests, smoother than the CV asked for; the offered rate a
    schedule achieved is for the report to show.

    Draws come from ``numpy.random.Generator(PCG64(seed))``: a seed gives the same schedule on
    every machine with the same numpy (numpy may change a Generator's streams between versions).
    """
    if n < 0:
        raise ValueError(f"arrival_offsets: n must be 0 or more (got {n})")
    if not rate_per_s > 0:  # also refuses nan
        raise ValueError(f"arrival_offsets: rate_per_s must be above 0 (got {rate_per_s})")
    if math.isinf(rate_per_s):
        return (0.0,) * n
    mean_gap_s = 1.0 / rate_per_s
    if spec.shape == "constant":
        return tuple(float(i * mean_gap_s) for i in range(1, n + 1))
    cv = 1.0 if spec.shape == "poisson" else spec.cv
    if not (math.isfinite(cv) and cv > 0):
        raise ValueError(f"arrival_offsets: gamma needs a finite CV above 0 (got {cv})")
    shape = 1.0 / cv**2
    rng = np.random.Generator(np.random.PCG64(seed))
    gaps_s = rng.gamma(shape=shape, scale=mean_gap_s / shape, size=n)
    return tuple(float(t) for t in np.cumsum(gaps_s))
