"""The decision a run supports, in words: what summary.md and report.html open with.

The choice is :mod:`qeval.recommend`'s (the cheapest target whose every SLO passes on its 95%
interval); this module picks the SLOs (the caller's, else each suite's own from suite.yaml, as
stored in the cells), runs it, and says the outcome plainly: the target to ship, or why there is
no answer yet — for an undecided SLO, how wide its interval is at this n and about which n would
decide it (an interval narrows like 1/sqrt(n): :func:`qeval.gates.decide`'s ``needed_n``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TYPE_CHECKING, Literal

from qeval.report._table import suite_scorings
from qeval.results import RunRecord

if TYPE_CHECKING:
    from qeval.recommend import Candidate, Check, Recommendation

DecisionKind = Literal["chosen", "undecided", "none_meets", "no_slos"]

MAX_REASONS = 12
"""Lines of "why" shown; the rest are counted (recommendation.md lists every verdict)."""


@dataclass(frozen=True)
class Decision:
    """What the run supports, ready to print."""

    kind: DecisionKind
    """``chosen`` (a target meets every SLO), ``undecided`` (no target fails for sure, but n is too
    small to tell), ``none_meets`` (every target fails an SLO, or cannot run), ``no_slos``."""
    chosen: str | None
    headline: str
    """One sentence: the answer, or that there is none yet and why."""
    reasons: tuple[str, ...] = ()
    """One line per verdict that matters: the chosen target's passes, or what rules the others out
    and which n would decide an undecided SLO."""
    slos: tuple[str, ...] = ()
    """The SLOs it was decided on, as written (``suite: expr`` for one suite's own)."""
    slo_source: str = ""
    """Where the SLOs came from, in words."""
    notes: tuple[str, ...] = ()


def decide_run(record: RunRecord, slos: Sequence[str] = ()) -> Decision:
    """The decision ``record`` supports on ``slos`` (every suite they apply to), else on each
    suite's own SLOs. Never raises on a bad SLO: it becomes a note."""
    from qeval.errors import QevalError
    from qeval.gates import SLO, parse_slo
    from qeval.recommend import Requirements, build_candidates, recommend
    from qeval.report._nodes import mixed_nodes

    targets = {c.precision for c in record.cells}
    notes: list[str] = []

    def usable(text: str) -> SLO | None:
        try:
            slo = parse_slo(text)
        except QevalError as exc:
            notes.append(f"SLO {text!r} left out: {exc}")
            return None
        if slo.reference is not None and slo.reference not in targets:
            notes.append(f"SLO {text!r} left out: it compares against {slo.reference!r}, which is not a target of this run.")
            return None
        return slo

    if slos:
        req = Requirements(slos=tuple(s for s in map(usable, slos) if s is not None))
        source = "the SLOs given"
    else:
        scoped = [(suite, slo) for suite, scoring in suite_scorings(record).items()
                  for text in scoring.slos if (slo := usable(text)) is not None]
        req = Requirements(suite_slos=tuple(scoped))
        source = "each suite's own SLOs (suite.yaml)"
        if record.settings.slos and set(record.settings.slos) != {str(s) for _, s in scoped}:
            notes.append("The pytest run checked the SLOs given to it: its verdicts are in slo.md.")
    described = req.describe()
    if not described and record.settings.slos:
        checked = ", ".join(f"`{s}`" for s in dict.fromkeys(record.settings.slos))
        return Decision("no_slos", None, f"No decision here: the pytest run checked {checked}, and its verdicts are in "
                        "slo.md. To decide on them across targets: `qeval recommend RUN_DIR --slo ...`.")
    if not described:
        return Decision("no_slos", None, "No decision: no SLOs to decide on. Add `slos:` to each suite.yaml, or run "
                        "`qeval recommend RUN_DIR --slo 'f1 >= 0.5' --slo 'p95_ttft_ms <= 300'`.", notes=tuple(notes))
    try:
        candidates = build_candidates(record.cells, req)
        if mixed_nodes(record):  # cells timed on machines that do not compare: no latency ranking
            from dataclasses import replace

            candidates = [replace(c, p95_latency_ms=None) for c in candidates]
            notes.append("p95 latency is left out of the frontier: the targets ran on nodes whose timings do "
                         "not compare (see Nodes); each latency SLO is still decided on its own cell's node.")
        rec = recommend(candidates, described)
    except QevalError as exc:
        return Decision("no_slos", None, f"No decision: {exc}", slos=described, slo_source=source, notes=tuple(notes))
    return from_recommendation(rec, source, notes)


def from_recommendation(rec: Recommendation, slo_source: str = "the SLOs given", notes: Sequence[str] = ()) -> Decision:
    """The words for a recommendation already made (``qeval recommend``'s, or :func:`decide_run`'s)."""
    from qeval.recommend import cost_key

    notes = (*notes, *rec.notes)
    by_cost = sorted(rec.candidates, key=cost_key)
    if not rec.candidates:
        return Decision("none_meets", None, "No decision: the run has no targets.", (), rec.slos, slo_source, notes)
    if rec.chosen is not None:
        chosen = next(c for c in rec.candidates if c.precision == rec.chosen)
        cheaper = by_cost[: by_cost.index(chosen)]
        reasons = [f"{rec.chosen} · {_check(k)}" for k in chosen.checks]
        reasons += [line for c in cheaper for line in _blocking(c)]
        headline = (f"Ship {rec.chosen}: the cheapest target (weights, then peak memory, then cost) that meets "
                    f"every SLO on its 95% interval.")
        if cheaper:
            headline += " Cheaper targets are ruled out below."
        return Decision("chosen", rec.chosen, headline, _cap(reasons), rec.slos, slo_source, notes)
    undecided = [c for c in by_cost if not c.problems and all(k.verdict.outcome != "fail" for k in c.checks)]
    reasons = [line for c in (undecided or by_cost) for line in _blocking(c)]
    if undecided:
        names = ", ".join(c.precision for c in undecided)
        headline = (f"No decision yet: no target fails an SLO for sure, but n is too small to tell for {names}. "
                    "More cases (or timed requests) would decide it:")
        return Decision("undecided", None, headline, _cap(reasons), rec.slos, slo_source, notes)
    return Decision("none_meets", None, "No target meets every SLO: each one fails an SLO on its whole 95% interval "
                    "or could not run.", _cap(reasons), rec.slos, slo_source, notes)


def _blocking(c: Candidate) -> list[str]:
    return [f"{c.precision} · {p}" for p in c.problems] + [f"{c.precision} · {_check(k)}" for k in c.blocking()]


def _cap(lines: list[str]) -> tuple[str, ...]:
    if len(lines) <= MAX_REASONS:
        return tuple(lines)
    return (*lines[:MAX_REASONS], f"… and {len(lines) - MAX_REASONS} more (recommendation.md lists every verdict)")


def _check(check: Check) -> str:
    """``suite medical: f1 >= 0.3: pass, 0.52 [0.40, 0.63], n=10``; for an undecided one, how wide the
    interval is at this n and about which n would decide it."""
    from qeval.gates import is_cost_metric

    v = check.verdict
    where = f"{check.scope}: {v.slo}"
    if v.value is None or v.ci is None:
        return f"{where}: {v.outcome} ({v.rule})"
    quality = v.slo.relation == "drop" or not is_cost_metric(v.slo.metric)
    text = f"{where}: {v.outcome}, {_num(v.value)} [{_num(v.ci[0])}, {_num(v.ci[1])}], n={v.n}"
    if v.outcome != "inconclusive":
        return text
    if v.rule.startswith("not evidence"):
        return f"{text}: {v.rule}"
    text = (f"{where}: undecided at n={v.n}: the interval {_spread(v.value, v.ci, quality)} "
            f"({_num(v.value)} [{_num(v.ci[0])}, {_num(v.ci[1])}]) and contains the threshold {v.slo.threshold:g}")
    if v.needed_n:
        return f"{text}; about n={v.needed_n} would decide"
    return f"{text}; the value sits on the threshold: no realistic n decides it"


def _spread(value: float, ci: tuple[float, float], quality: bool) -> str:
    lo, hi = ci
    if not (math.isfinite(lo) and math.isfinite(hi)):
        side = "above" if not math.isfinite(hi) else "below"
        return f"is unbounded {side} (too few samples to bound this percentile)"
    half = (hi - lo) / 2
    if quality and abs(value) <= 1 and abs(half) <= 1:
        return f"spans ±{half * 100:.0f} points"
    return f"spans ±{_num(half)}"


def _num(x: float) -> str:
    if not math.isfinite(x):
        return "unbounded"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) >= 10 else f"{x:.2f}"


def render_decision_markdown(decision: Decision) -> list[str]:
    """summary.md's opening section."""
    lines = ["## Decision", "", f"**{decision.headline}**", ""]
    lines += [f"- {r}" for r in decision.reasons]
    if decision.reasons:
        lines.append("")
    if decision.slos:
        lines += [f"Decided on {decision.slo_source}: " + ", ".join(f"`{s}`" for s in decision.slos)
                  + ". Every verdict is on a 95% interval: pass when all of it meets the threshold, fail when "
                  "none of it does, undecided when the threshold lies inside it.", ""]
    lines += [f"> {n}" for n in decision.notes]
    if decision.notes:
        lines.append("")
    return lines


def render_decision_console(decision: Decision) -> Any:
    """The decision for the terminal, under the table: the headline (green when a target is chosen,
    red when none meets the SLOs, yellow while undecided) and up to three reasons."""
    from rich.text import Text

    style = {"chosen": "bold green", "none_meets": "bold red"}.get(decision.kind, "bold yellow")
    text = Text("Decision: ", style="bold")
    text.append(decision.headline, style=style)
    for reason in decision.reasons[:3]:
        text.append(f"\n  - {reason}")
    if len(decision.reasons) > 3:
        text.append(f"\n  (and {len(decision.reasons) - 3} more in summary.md)")
    return text


__all__ = ["Decision", "decide_run", "from_recommendation", "render_decision_console", "render_decision_markdown"]
