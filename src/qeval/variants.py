"""What a sweep runs: one variant per precision, or per calibration choice for calibrated ones.

``--calibration generic,medical`` makes each calibrated precision (GPTQ) one cell
per set; ``--calibration-seeds K`` quantizes K times per set, each from a
different sample of it. Each variant is labelled in the report's precision
column: ``gptq-int4`` when there is one choice, else ``gptq-int4@medical`` and,
with several seeds, ``gptq-int4@medical/s1`` (sample seed 1). Uncalibrated
precisions run once whatever the calibration options say.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qeval.errors import UsageError

LABEL_SET = "@"
LABEL_SEED = "/s"


@dataclass(frozen=True)
class Variant:
    label: str
    """The cell's precision column."""
    precision: Any
    """A :class:`qeval.quantize.Precision`."""
    calibration: str | None = None
    """Calibration set name or path (calibrated precisions only)."""
    seed: int | None = None
    """Seed of the calibration sample."""
    target: Any = None
    """The :class:`qeval.targets.TargetSpec` this variant runs (``None``: a plain precision)."""


def calibration_names(spec: str | None) -> tuple[str, ...]:
    """``"generic, medical"`` → ``("generic", "medical")``; refuses empty entries and repeats."""
    if spec is None:
        return ()
    names = tuple(part.strip() for part in spec.split(","))
    if not any(names):
        return ()
    if "" in names:
        raise UsageError(f"--calibration {spec!r} has an empty entry: give names separated by commas, e.g. generic,medical.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UsageError(f"--calibration {spec!r} names {', '.join(repeated)} more than once: give each set once.")
    return names


def seeds(first: int, count: int) -> tuple[int, ...]:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise UsageError(f"--calibration-seeds must be a whole number >= 1 (got {count!r}).")
    return tuple(range(first, first + count))


def plan(precisions: Sequence[Any], calibration: str | None, first_seed: int = 0, seed_count: int = 1,
         targets: Sequence[Any] = ()) -> list[Variant]:
    """The variants of a sweep, in the order given: calibration sets, then seeds, vary fastest.

    ``targets`` (:class:`qeval.targets.TargetSpec`, one per entry of ``precisions``; ``None``
    in ``precisions`` for an endpoint) name the variants after the targets."""
    names = calibration_names(calibration)
    seed_list = seeds(first_seed, seed_count)
    several = len(names) > 1 or len(seed_list) > 1
    out: list[Variant] = []
    specs = list(targets) or [None] * len(precisions)
    for precision, target in zip(precisions, specs, strict=True):
        base = target.name if target is not None else precision.name
        if precision is None or not precision.needs_calibration or not names:
            out.append(Variant(base, precision, target=target))
            continue
        for name in names:
            for seed in seed_list:
                label = base
                if several:
                    label += f"{LABEL_SET}{_short(name)}"
                    if len(seed_list) > 1:
                        label += f"{LABEL_SEED}{seed}"
                out.append(Variant(label, precision, name, seed, target))
    labels = [v.label for v in out]
    clash = sorted({label for label in labels if labels.count(label) > 1})
    if clash:
        raise UsageError(
            f"--calibration {calibration!r}: two sets would share the label {clash[0]!r} in the report. "
            "Give files with different names (the label is the file or folder name)."
        )
    return out


def _short(name: str) -> str:
    """A set's label: its name, or a path's file stem (``data/my_set.jsonl`` → ``my_set``)."""
    from pathlib import PurePath

    path = PurePath(name)
    if path.name == "calibration.jsonl":
        return path.parent.name or name
    return path.stem if path.suffix else path.name


__all__ = ["Variant", "calibration_names", "plan", "seeds"]
