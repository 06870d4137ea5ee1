"""Calibration sensitivity: calibrated cells of one precision compared on the same cases.

Two views, both built from cells whose ``precision_config`` holds a
``calibration`` record (GPTQ):

- **pairs**: two calibration sets, same sample seed, same suite. The difference
  is paired on case ids (``measure.drop``: Tango interval and McNemar p for
  accuracy, paired bootstrap for F1) and lists the cases that flipped.
- **seed spread**: one set quantized from K samples (``--calibration-seeds K``).
  The cells see the same cases with greedy decoding, so their spread is caused
  by the calibration sample alone. It is shown beside the sampling error of one
  cell (how far the score would move on another draw of cases): a spread well
  below the sampling error means the choice of sample does not matter at this n.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from qeval.metric_specs import metric_value, scoring_of
from qeval.report._table import MISSING
from qeval.results import CellResult, RunRecord

CALIBRATION_FILE = "calibration.json"
SHOWN_FLIPS = 5


@dataclass(frozen=True)
class CalibrationPair:
    precision: str
    suite: str
    metric: str
    a: str
    """Label of the first cell (e.g. ``gptq-int4@generic``)."""
    b: str
    a_value: float | None
    b_value: float | None
    difference: float | None
    """``a - b``: positive when calibrating on ``a`` scores higher."""
    ci: tuple[float, float] | None
    p_value: float | None
    n: int
    method: str
    only_a: tuple[str, ...]
    """Case ids that pass with ``a`` and fail with ``b``."""
    only_b: tuple[str, ...]


@dataclass(frozen=True)
class SeedSpread:
    precision: str
    suite: str
    calibration_set: str
    metric: str
    labels: tuple[str, ...]
    seeds: tuple[int, ...]
    values: tuple[float, ...]
    mean: float
    sd: float
    """Standard deviation across seeds (ddof=1): the calibration sample's own effect."""
    low: float
    high: float
    sampling_se: float | None
    """Standard error of one cell's score from the finite set of cases."""
    unstable_cases: tuple[str, ...]
    """Case ids whose pass/fail (accuracy) or per-case score (other metrics) differs between seeds."""
    n: int


def _calibrated(record: RunRecord) -> list[CellResult]:
    return [
        c for c in record.cells
        if c.status == "ok" and c.cases and c.precision_config.calibration is not None
    ]


def _key(cell: CellResult) -> tuple[str, str, str, Any]:
    cfg = cell.precision_config
    cal = cfg.calibration
    assert cal is not None, "only calibrated cells are keyed"
    return (cfg.precision or cell.precision, cell.suite, cal.name, cal.seed)


def _seed_of(cell: CellResult) -> int:
    cal = cell.precision_config.calibration
    return cal.seed if cal is not None else 0


def _metrics(a: CellResult, b: CellResult) -> list[str]:
    """The suite's primary metric and its pass rate, where both cells have them and they have a
    paired test (as the suite's scorer declares it)."""
    scoring = scoring_of(b)
    names = dict.fromkeys((scoring.primary, "accuracy"))
    return [m for m in names if scoring.spec(m).paired and _value(a, m) is not None and _value(b, m) is not None]


def _value(cell: CellResult, metric: str) -> float | None:
    mv = metric_value(cell, metric)
    return None if mv is None else mv.value


def pairs(record: RunRecord) -> list[CalibrationPair]:
    """Every two calibration sets at the same seed, per precision and suite."""
    from qeval.measure import MeasureError, drop

    groups: dict[tuple, dict[str, CellResult]] = {}
    for cell in _calibrated(record):
        precision, suite, name, seed = _key(cell)
        groups.setdefault((precision, suite, seed), {})[name] = cell
    out = []
    for (precision, suite, _seed), by_set in groups.items():
        for (_, a), (_, b) in itertools.combinations(by_set.items(), 2):
            for metric in _metrics(a, b):
                try:
                    m = drop(a, b, metric)  # a - b on the shared cases
                except MeasureError:
                    continue
                out.append(CalibrationPair(
                    precision, suite, metric, a.precision, b.precision, _value(a, metric), _value(b, metric),
                    m.value, m.ci, m.p_value, m.n, m.method,
                    tuple(f.case_id for f in m.lost), tuple(f.case_id for f in m.gained),
                ))
    return out


def seed_spreads(record: RunRecord) -> list[SeedSpread]:
    """Per precision, suite and set quantized from two or more samples: the spread across them."""
    groups: dict[tuple, list[CellResult]] = {}
    for cell in _calibrated(record):
        precision, suite, name, _seed = _key(cell)
        groups.setdefault((precision, suite, name), []).append(cell)
    out = []
    for (precision, suite, name), cells in groups.items():
        if len(cells) < 2:
            continue
        cells = sorted(cells, key=_seed_of)
        for metric in _metrics(cells[0], cells[1]):
            maybe = [_value(c, metric) for c in cells]
            values = [v for v in maybe if v is not None]
            if len(values) < len(maybe):
                continue
            out.append(_spread(precision, suite, name, metric, cells, values))
    return out


def _spread(precision: str, suite: str, name: str, metric: str, cells: Sequence[CellResult],
            values: Sequence[float]) -> SeedSpread:
    import statistics

    shared = set.intersection(*({c.case_id for c in cell.cases} for cell in cells))
    pass_fail = scoring_of(cells[0]).spec(metric).pairing == "pass_fail"
    # accuracy: a case changes when its pass/fail does; F1 and co.: when its score does
    verdicts: dict[str, set[Any]] = {}
    for cell in cells:
        for case in cell.cases:
            if case.case_id in shared:
                seen = case.passed if pass_fail else round(float(case.score), 9)
                verdicts.setdefault(case.case_id, set()).add(seen)
    unstable = tuple(sorted(cid for cid, seen in verdicts.items() if len(seen) > 1))
    mean = statistics.fmean(values)
    return SeedSpread(
        precision=precision, suite=suite, calibration_set=name, metric=metric,
        labels=tuple(c.precision for c in cells),
        seeds=tuple(_seed_of(c) for c in cells),
        values=tuple(values), mean=mean, sd=statistics.stdev(values), low=min(values), high=max(values),
        sampling_se=_sampling_se(cells, metric, mean), unstable_cases=unstable, n=len(shared),
    )


def _sampling_se(cells: Sequence[CellResult], metric: str, mean: float) -> float | None:
    if scoring_of(cells[0]).spec(metric).pairing == "pass_fail":
        n = min(c.n for c in cells)
        return math.sqrt(mean * (1 - mean) / n) if n else None
    # F1: the bootstrap interval's half-width over 1.96, averaged over the cells
    halves = [(mv.ci[1] - mv.ci[0]) / 2 for c in cells if (mv := c.metrics.get(metric)) and mv.ci]
    return sum(halves) / len(halves) / 1.96 if halves else None


def sensitivity(record: RunRecord) -> dict[str, Any]:
    """JSON-ready ``{"pairs": [...], "seed_spread": [...]}`` (both empty without calibrated variants)."""
    return {"pairs": [asdict(p) for p in pairs(record)], "seed_spread": [asdict(s) for s in seed_spreads(record)]}


def _num(v: float | None, signed: bool = False) -> str:
    return MISSING if v is None else (f"{v:+.3f}" if signed else f"{v:.3f}")


def _ids(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:SHOWN_FLIPS])
    return f"{len(ids)}" + (f" ({shown}{', …' if len(ids) > SHOWN_FLIPS else ''})" if ids else "")


def render_sensitivity(record: RunRecord) -> list[str]:
    """The summary.md section (no lines when the run compared no calibration choices)."""
    from qeval.report._markdown import _table

    found_pairs, spreads = pairs(record), seed_spreads(record)
    if not found_pairs and not spreads:
        return []
    lines = ["## Calibration sensitivity", ""]
    if found_pairs:
        lines += [("Same precision and suite, calibrated on two sets (same sample seed), paired on the same cases. "
                  "`a − b` > 0: set a scores higher. Flips: cases that pass with one set only."), ""]
        lines += _table(
            ("precision", "suite", "metric", "a", "b", "a", "b", "a − b [95% CI]", "p", "pass only with a", "pass only with b"),
            [(p.precision, p.suite, p.metric, f"`{p.a}`", f"`{p.b}`", _num(p.a_value), _num(p.b_value),
              f"{_num(p.difference, True)} [{_num(p.ci[0], True) if p.ci else MISSING}, {_num(p.ci[1], True) if p.ci else MISSING}]",
              MISSING if p.p_value is None else f"{p.p_value:.3f}", _ids(p.only_a), _ids(p.only_b))
             for p in found_pairs],
        )
        lines.append("")
    if spreads:
        lines += [("One set, quantized from different samples of it (`--calibration-seeds`). Same cases, greedy "
                  "decoding: the spread across seeds is the calibration sample's own effect. The sampling SE is "
                  "how far one cell's score would move on another draw of cases of this size."), ""]
        lines += _table(
            ("precision", "suite", "set", "metric", "seeds", "values", "mean", "SD across seeds", "range",
             "sampling SE (one cell)", "cases that change between seeds"),
            [(s.precision, s.suite, s.calibration_set, s.metric, ", ".join(str(x) for x in s.seeds),
              ", ".join(f"{v:.3f}" for v in s.values), _num(s.mean), _num(s.sd), f"{s.low:.3f}–{s.high:.3f}",
              _num(s.sampling_se), _ids(s.unstable_cases) + f" of {s.n}")
             for s in spreads],
        )
        lines.append("")
    return lines


__all__ = ["CALIBRATION_FILE", "CalibrationPair", "SeedSpread", "pairs", "render_sensitivity", "seed_spreads", "sensitivity"]
