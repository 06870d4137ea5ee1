"""Synthetic token lengths (``--prompt-tokens``, ``--output-tokens``): one fixed length, a
lognormal with a given median and 95th percentile (the long right tail real traffic has), or a
uniform range. Pure; a seed reproduces the draws exactly."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from qeval.errors import UsageError

Z_95 = 1.6448536269514722
"""The standard normal's 95th percentile: a lognormal's p95 is ``exp(mu + Z_95 * sigma)``."""

LengthKind = Literal["fixed", "lognormal", "uniform"]

MAX_LENGTH_TOKENS = 10_000_000
"""The most tokens any length may name: more is a typo, not a context window."""

_EXAMPLES = "e.g. 512, lognormal:median=512,p95=2048 (optionally ,max=4096) or uniform:min=64,max=256"


@dataclass(frozen=True)
class LengthSpec:
    """How many tokens each synthetic request has. Build it with :func:`parse_lengths`, which
    turns a spread that cannot vary (``uniform:min=N,max=N``, ``p95`` equal to ``median``)
    into ``fixed``."""

    kind: LengthKind
    median_tokens: int
    """``fixed``: the length; ``lognormal``: its median; ``uniform``: the middle of the range."""
    p95_tokens: int | None = None
    """``lognormal`` only: its 95th percentile (before ``max_tokens`` clamps it)."""
    min_tokens: int | None = None
    """``uniform`` only: the shortest length (inclusive)."""
    max_tokens: int | None = None
    """``uniform``: the longest length (inclusive); ``lognormal``: an optional clamp."""

    @property
    def is_fixed(self) -> bool:
        return self.kind == "fixed"

    @property
    def label(self) -> str:
        """Short text for reports; :func:`parse_lengths` reads it back to this spec."""
        if self.kind == "fixed":
            return str(self.median_tokens)
        if self.kind == "uniform":
            return f"uniform:min={self.min_tokens},max={self.max_tokens}"
        clamp = f",max={self.max_tokens}" if self.max_tokens is not None else ""
        return f"lognormal:median={self.median_tokens},p95={self.p95_tokens}{clamp}"

    def draw(self, n: int, seed: int) -> tuple[int, ...]:
        """``n`` lengths, each at least 1, the same for the same seed
        (``numpy.random.Generator(PCG64(seed))``). Lognormal draws are rounded to the nearest
        whole token, then clamped to ``[1, max_tokens]``."""
        if n < 0:
            raise ValueError(f"LengthSpec.draw: n must be 0 or more (got {n})")
        if self.kind == "fixed":
            return (self.median_tokens,) * n
        rng = np.random.Generator(np.random.PCG64(seed))
        if self.kind == "uniform":
            assert self.min_tokens is not None and self.max_tokens is not None
            return tuple(int(v) for v in rng.integers(self.min_tokens, self.max_tokens, size=n, endpoint=True))
        assert self.p95_tokens is not None
        mu = math.log(self.median_tokens)
        sigma = math.log(self.p95_tokens / self.median_tokens) / Z_95
        upper = self.max_tokens if self.max_tokens is not None else np.inf
        values = np.clip(np.rint(rng.lognormal(mu, sigma, size=n)), 1, upper)
        return tuple(int(v) for v in values)


def parse_lengths(text: str, flag: str) -> LengthSpec:
    """``"512"`` or ``"fixed:512"``; ``"lognormal:median=M,p95=P"`` (P >= M, optionally
    ``,max=N`` with N >= P to clamp the tail); ``"uniform:min=A,max=B"`` (1 <= A <= B).
    Every number is a whole number of tokens; ``flag`` (``--prompt-tokens``) names the
    option in errors."""
    where = f"{flag} {text!r}"
    if not text.strip():
        raise UsageError(f"{flag} is empty; give a number of tokens or a distribution, {_EXAMPLES}.")
    kind, colon, rest = text.strip().lower().partition(":")
    kind = kind.strip()
    if not colon and kind in ("lognormal", "uniform"):
        raise UsageError(f"{where}: {kind} needs its parameters after a colon; {_EXAMPLES}.")
    if not colon or kind == "fixed":
        tokens = _whole(rest if colon else kind, where, "the length")
        return LengthSpec("fixed", tokens)
    if kind not in ("lognormal", "uniform"):
        raise UsageError(f"{where}: {kind!r} is not a length distribution; {_EXAMPLES}.")
    needed = {"lognormal": ("median", "p95"), "uniform": ("min", "max")}[kind]
    allowed = needed + (("max",) if kind == "lognormal" else ())
    values = _key_values(rest, where, allowed, kind)
    missing = [k for k in needed if k not in values]
    if missing:
        raise UsageError(f"{where}: {kind} needs {' and '.join(missing)}; {_EXAMPLES}.")
    if kind == "uniform":
        low, high = values["min"], values["max"]
        if low > high:
            raise UsageError(f"{where}: min ({low}) is above max ({high}); e.g. uniform:min=64,max=256.")
        if low == high:
            return LengthSpec("fixed", low)
        return LengthSpec("uniform", (low + high) // 2, min_tokens=low, max_tokens=high)
    median, p95, clamp = values["median"], values["p95"], values.get("max")
    if p95 < median:
        raise UsageError(f"{where}: p95 ({p95}) is below the median ({median}); a 95th percentile is at least "
                         "the median, e.g. lognormal:median=512,p95=2048.")
    if clamp is not None and clamp < p95:
        raise UsageError(f"{where}: max ({clamp}) is below p95 ({p95}), so the p95 asked for could not be "
                         "drawn; raise max to p95 or more, or leave it out.")
    if p95 == median:
        return LengthSpec("fixed", median)
    return LengthSpec("lognormal", median, p95_tokens=p95, max_tokens=clamp)


def _key_values(text: str, where: str, allowed: tuple[str, ...], kind: str) -> dict[str, int]:
    values: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, eq, value = (s.strip() for s in part.partition("="))
        if not eq:
            raise UsageError(f"{where}: {part!r} should be KEY=VALUE; {_EXAMPLES}.")
        if key not in allowed:
            raise UsageError(f"{where}: {kind} takes {', '.join(allowed)}, not {key!r}; {_EXAMPLES}.")
        if key in values:
            raise UsageError(f"{where}: {key} is given twice; give it once.")
        values[key] = _whole(value, where, key)
    return values


def _whole(text: str, where: str, what: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise UsageError(f"{where}: {what} {text.strip()!r} is not a whole number of tokens; {_EXAMPLES}.") from None
    if not 1 <= value <= MAX_LENGTH_TOKENS:
        raise UsageError(f"{where}: {what} must be from 1 to {MAX_LENGTH_TOKENS:,} tokens (got {value}); {_EXAMPLES}.")
    return value
