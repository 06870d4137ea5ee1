"""Set-overlap counts and micro precision/recall/F1 shared by the extraction scorers.

A case's gold and predicted answers are sets of hashable items (``(field, value)``
or ``(type, entity)`` pairs). Suite-level metrics are *micro* averages over all
items of all cases, from the summed counts: what scikit-learn's
``precision_recall_fscore_support(average="binary", zero_division=0)`` gives over one binary
"is it gold / was it predicted" label per distinct item of each case (the tests hold the two
equal; importing scikit-learn, with scipy.stats and pandas, cost ~1.3 s of every F1-scored
sweep). The 95% intervals come from a case-level bootstrap of the per-case (tp, fp, fn) counts
(``qeval.stats``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence, Set

import numpy as np

from qeval.metric_specs import share_spec
from qeval.results import MetricSpec, MetricValue, Score


def overlap(gold: Set[Hashable], pred: Set[Hashable]) -> tuple[int, int, int]:
    """(tp, fp, fn) of a predicted set against a gold set."""
    tp = len(gold & pred)
    return tp, len(pred) - tp, len(gold) - tp


def case_f1(tp: int, fp: int, fn: int) -> float:
    """F1 of one case; 1.0 when there was nothing to find and nothing was found."""
    denom = 2 * tp + fp + fn
    return 1.0 if denom == 0 else 2 * tp / denom


def micro_precision(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> float:
    """Micro precision from per-case counts (0 when nothing was predicted)."""
    d = tp.sum() + fp.sum()
    return float(tp.sum() / d) if d else 0.0


def micro_recall(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> float:
    """Micro recall from per-case counts (0 when there was nothing to find)."""
    d = tp.sum() + fn.sum()
    return float(tp.sum() / d) if d else 0.0


def micro_prf(tp: Sequence[int], fp: Sequence[int], fn: Sequence[int]) -> tuple[float, float, float]:
    """Micro (precision, recall, F1) from per-case counts; (1, 1, 1) when there was nothing to find
    and nothing was found."""
    from qeval.stats import micro_f1

    counts = np.asarray(tp), np.asarray(fp), np.asarray(fn)
    if int(sum(c.sum() for c in counts)) == 0:
        return 1.0, 1.0, 1.0
    return micro_precision(*counts), micro_recall(*counts), micro_f1(tp, fp, fn)


def f1_specs(level: str, unparseable: str) -> tuple[MetricSpec, ...]:
    """What :func:`f1_metrics` returns, declared: ``level`` says what an item is (``entity-level``),
    ``unparseable`` what an unparseable completion lacks."""
    return (
        MetricSpec("f1", f"{level} micro F1", "higher", "micro_f1"),
        MetricSpec("precision", f"{level} micro precision", "higher", "micro_precision"),
        MetricSpec("recall", f"{level} micro recall", "higher", "micro_recall"),
        share_spec("unparseable_rate", f"share of completions with {unparseable}"),
    )


def f1_metrics(scores: Sequence[Score]) -> dict[str, MetricValue]:
    """``f1``, ``precision``, ``recall`` (micro, bootstrap CI over cases) and
    ``unparseable_rate`` (Wilson CI) from scores whose details hold tp/fp/fn/parseable."""
    from qeval.stats import bootstrap_ci, micro_f1, rate

    n = len(scores)
    tp = [int(s.details.get("tp", 0)) for s in scores]
    fp = [int(s.details.get("fp", 0)) for s in scores]
    fn = [int(s.details.get("fn", 0)) for s in scores]
    unparseable = rate([not s.details.get("parseable", False) for s in scores])
    if n == 0:
        empty = MetricValue(value=None, ci=None, n=0)
        return {"f1": empty, "precision": empty, "recall": empty, "unparseable_rate": unparseable}
    prec, rec, f1 = micro_prf(tp, fp, fn)
    cols = [tp, fp, fn]
    return {
        "f1": MetricValue(value=f1, ci=bootstrap_ci(cols, micro_f1), n=n),
        "precision": MetricValue(value=prec, ci=bootstrap_ci(cols, micro_precision), n=n),
        "recall": MetricValue(value=rec, ci=bootstrap_ci(cols, micro_recall), n=n),
        "unparseable_rate": unparseable,
    }
