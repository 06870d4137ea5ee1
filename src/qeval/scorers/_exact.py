"""``exact``: normalised string equality (case and whitespace insensitive)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from qeval.metric_specs import aggregate_names, pass_rate
from qeval.results import MetricSpec, MetricValue, Score
from qeval.scorers._base import fail


def normalise_text(text: str) -> str:
    """Casefold, collapse whitespace, strip surrounding whitespace and trailing ``.``."""
    return re.sub(r"\s+", " ", text).strip().rstrip(".").strip().casefold()


@dataclass(frozen=True)
class ExactScorer:
    """Pass when the (first line of the, if ``first_line``) completion equals ``expected``
    after normalisation; ``expected`` may be a string or a list of accepted strings."""

    first_line: bool = True
    name: str = "exact"
    metric_specs: ClassVar[tuple[MetricSpec, ...]] = (pass_rate("the answer matches exactly"),)
    metric_names: ClassVar[tuple[str, ...]] = aggregate_names(metric_specs)
    """What ``aggregate`` returns (SLOs are checked against it before anything runs)."""

    def score(self, completion: str, expected: Any) -> Score:
        text = completion.strip().splitlines()[0] if (self.first_line and completion.strip()) else completion
        accepted = expected if isinstance(expected, list) else [expected]
        got = normalise_text(text)
        if any(got == normalise_text(str(a)) for a in accepted):
            return Score(value=1.0, passed=True, details={"parsed": got})
        return fail(f"{got!r} is not one of {[str(a) for a in accepted]!r}", parsed=got)

    def aggregate(self, scores: Sequence[Score]) -> dict[str, MetricValue]:
        return {}
