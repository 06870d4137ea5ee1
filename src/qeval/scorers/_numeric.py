"""``numeric``: the final number in free text, compared with a tolerance."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

from qeval.metric_specs import aggregate_names, pass_rate, share_spec
from qeval.results import MetricSpec, MetricValue, Score
from qeval.scorers._base import fail

# A number: optional minus (not a hyphen between words/digits), then either
# comma-grouped thousands or plain digits, optional decimals; or a fraction a/b.
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>-|−)?"
    r"(?:(?P<frac>\d+\s*/\s*\d+)(?![\d.,]\d)"
    r"|(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+(?:\.\d+)?|\.\d+))"
)
# Markers after which the model states its answer; the last one wins.
_STRONG_MARKER = re.compile(r"answer|=|\bequals\b", re.IGNORECASE)


def _to_float(match: re.Match[str]) -> float | None:
    sign = -1.0 if match.group("sign") else 1.0
    if match.group("frac"):
        num, den = (int(x) for x in re.split(r"\s*/\s*", match.group("frac")))
        return None if den == 0 else sign * float(Fraction(num, den))
    return sign * float(match.group("num").replace(",", ""))


def extract_number(text: str) -> float | None:
    """The answer number in ``text`` or ``None``.

    Preference: the first number after the last "answer"/"="/"equals" marker
    that is followed by a number; otherwise the last number in the text.
    Handles ``1,234``, ``-3.5``, ``.5``, ``3/4`` and units (``42 apples``).
    """
    numbers = [(m.start(), v) for m in _NUMBER.finditer(text) if (v := _to_float(m)) is not None]
    if not numbers:
        return None
    for marker in reversed(list(_STRONG_MARKER.finditer(text))):
        after = [v for pos, v in numbers if pos >= marker.end()]
        if after:
            return after[0]
    return numbers[-1][1]


def parse_expected(expected: Any) -> float:
    """``expected`` as a float: a JSON number or a numeric string (``"3/4"``, ``"1,200"``)."""
    if isinstance(expected, bool):
        raise ValueError(f"expected must be a number, got {expected!r}")
    if isinstance(expected, (int, float)):
        return float(expected)
    if isinstance(expected, str):
        m = _NUMBER.fullmatch(expected.strip())
        if m and (v := _to_float(m)) is not None:
            return v
    raise ValueError(f"expected must be a number or numeric string, got {expected!r}")


@dataclass(frozen=True)
class NumericScorer:
    """Pass when the extracted number is within ``tolerance`` (absolute) or
    ``rel_tolerance`` (relative to the expected value); exact by default."""

    tolerance: float = 0.0
    rel_tolerance: float = 0.0
    name: str = "numeric"
    metric_specs: ClassVar[tuple[MetricSpec, ...]] = (
        pass_rate("the final number is right (within the tolerance)"),
        share_spec("unparseable_rate", "share of completions with no number in them"),
    )
    metric_names: ClassVar[tuple[str, ...]] = aggregate_names(metric_specs)
    """What ``aggregate`` returns (SLOs are checked against it before anything runs)."""

    def __post_init__(self) -> None:
        for arg in ("tolerance", "rel_tolerance"):
            value = getattr(self, arg)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{arg} must be a number >= 0, got {value!r}")

    def score(self, completion: str, expected: Any) -> Score:
        target = parse_expected(expected)
        got = extract_number(completion)
        if got is None:
            return fail("no number found in the completion", parsed=None, expected=target)
        ok = math.isclose(got, target, abs_tol=max(self.tolerance, 1e-9), rel_tol=self.rel_tolerance)
        if ok:
            return Score(value=1.0, passed=True, details={"parsed": got, "expected": target})
        return fail(f"answer {got:g} != expected {target:g}", parsed=got, expected=target)

    def aggregate(self, scores: Sequence[Score]) -> dict[str, MetricValue]:
        from qeval.stats import rate

        return {"unparseable_rate": rate([s.details.get("parsed", 0) is None for s in scores])}
