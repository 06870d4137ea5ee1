"""The machine's load from other work during each timed pass, as report lines."""

from __future__ import annotations

from qeval.background import BUSY_STEAL_SHARE, BackgroundLoad, busy_other_share
from qeval.results import RunRecord


def background_rows(record: RunRecord) -> list[tuple[str, str, str, str, str, str]]:
    """Per timed cell: target, suite, others' CPU share, steal, load average, verdict."""
    rows = []
    for cell in record.cells:
        bg = cell.latency.background if cell.latency else None
        if bg is None:
            continue
        others = f"{bg.other_share:.0%}" + (f" (probes {bg.probed_share:.0%})" if bg.probed_share is not None else "")
        steal = "—" if bg.steal_share is None else f"{bg.steal_share:.0%}"
        load = "—" if bg.load_avg_1m is None else f"{bg.load_avg_1m:g}"
        paired = cell.latency.paired if cell.latency else None
        verdict = f"busy: {bg.reason}" if bg.busy else "quiet"
        if bg.intra_op_threads is not None:
            verdict += f"; {bg.intra_op_threads} intra-op thread{'s' if bg.intra_op_threads != 1 else ''}"
        if paired is not None:
            verdict += f"; paired with {paired.reference} ({paired.pairs} pairs)"
        rows.append((cell.precision, cell.suite, others, steal, load, verdict))
    return rows


def render_background(record: RunRecord) -> list[str]:
    """summary.md's "Machine load while timing" section (empty when no pass recorded it)."""
    rows = background_rows(record)
    if not rows:
        return []
    lines = ["## Machine load while timing", "",
             "| target | suite | other processes' CPU | steal | load avg 1 min | |", "|---|---|---|---|---|---|"]
    lines += [f"| `{t}` | {s} | {o} | {st} | {la} | {v} |" for t, s, o, st, la, v in rows]
    lines += ["", f"A pass counts as busy when other processes used >= {busy_other_share():.0%} of the machine's CPU "
              f"or steal reached {BUSY_STEAL_SHARE:.0%}: its latency figures are marked `(busy!)` and no gate, "
              "comparison or recommendation takes them as evidence -- not even a ratio from a pass *paired* with "
              "the reference (ABBA, same window): both sides shared the load, but with several intra-op threads "
              "heavy contention slows some kernels more than others. The exception is a paired ratio between two "
              "in-process passes that each ran at one intra-op thread, which contention slows alike."]
    if any(bg.busy and bg.intra_op_threads not in (None, 1) for bg in _loads(record)):
        lines += ["", "On a machine that is not yours alone (a shared CI runner), run with `OMP_NUM_THREADS=1`: "
                  "absolute latencies are still not evidence while it is busy, but ratios against a paired "
                  "reference are (and describe one-thread serving)."]
    return lines + [""]


def _loads(record: RunRecord) -> list[BackgroundLoad]:
    return [c.latency.background for c in record.cells if c.latency and c.latency.background]
