"""How busy the machine was with work other than qeval's while latency was timed.

A latency measured on a shared machine is only as good as the machine was quiet: on 2 cores,
one busy neighbour makes every token slower and a precision measured while it ran looks slow.
So every timed pass records the machine's background load over its window:

- **other processes' CPU**: the CPU time the whole machine spent busy (``/proc/stat``: user,
  nice, system, irq, softirq) minus this process's own (``os.times``), as a share of all the
  CPU time the window had (wall time x online CPUs);
- **steal**: time the hypervisor gave this VM's CPUs to someone else, as a share;
- **load average** (1 min) at the end: a lagging hint, recorded, not judged.

The pass is judged :attr:`BackgroundLoad.busy` when others used at least
:data:`BUSY_OTHER_SHARE` of the machine or steal reached :data:`BUSY_STEAL_SHARE`; its absolute
figures are then not evidence, nor is a ratio -- except a paired ratio between two in-process
passes timed with one intra-op thread each (``OMP_NUM_THREADS=1``), see
docs/metrics.md ("One intra-op thread keeps a paired ratio"). An endpoint
served from this machine makes its server's CPU look like "others": for remote targets the
window is therefore also probed while nothing is in flight (just before and after the pass),
and the judgement uses those probes. Linux only; elsewhere nothing is recorded (``None``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

BUSY_OTHER_SHARE = 0.2
"""Others using a fifth of the machine (on 2 cores: 0.4 of a core, all the time) is enough to
move latency percentiles by tens of percent: measured, see ``benchmarks/noise.py``."""
BUSY_STEAL_SHARE = 0.05
BUSY_SHARE_ENV = "QEVAL_BUSY_OTHER_SHARE"
"""Overrides :data:`BUSY_OTHER_SHARE` (a number; above 1 turns the judgement off). For a runner
that is never quiet, to be said in the report, not for hiding load: the load is still recorded."""
PROBE_S = 0.5
"""Length of each quiet probe around a remote target's pass."""

_BUSY_FIELDS = (0, 1, 2, 5, 6)  # user nice system irq softirq (guest time is inside user)
_STEAL_FIELD = 7


@dataclass(frozen=True)
class CpuSample:
    """One reading of the machine's and this process's CPU clocks."""

    at_s: float
    """``time.monotonic()``."""
    busy_s: float
    """CPU seconds the whole machine spent busy since boot (all CPUs)."""
    steal_s: float
    total_s: float
    """CPU seconds of every kind since boot, idle included (all CPUs)."""
    own_s: float
    """CPU seconds this process has used (all its threads)."""


@dataclass(frozen=True)
class BackgroundLoad:
    """The machine's load from other work over one timed window."""

    window_s: float
    cpus: int
    other_cpu_s: float
    """CPU seconds used by other processes during the window (never below 0)."""
    other_share: float
    """``other_cpu_s / (window_s * cpus)``: 0 = only qeval ran, 1 = others had every CPU."""
    steal_share: float | None
    load_avg_1m: float | None
    busy: bool
    reason: str | None = None
    """Why the window counts as busy (``None`` when it does not)."""
    probed_share: float | None = None
    """Remote targets: others' share in the quiet probes around the pass (what was judged)."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    intra_op_threads: int | None = None
    """torch's intra-op threads while an in-process target was timed (``None``: an endpoint, or no
    torch). At one thread a paired ratio survives a busy machine (docs/metrics.md)."""


def parse_proc_stat(text: str, ticks_per_s: float) -> tuple[float, float, float]:
    """(busy, steal, total) CPU seconds from the aggregate ``cpu`` line of ``/proc/stat``."""
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            values = [float(v) for v in parts[1:]]
            values += [0.0] * (8 - len(values))
            busy = sum(values[i] for i in _BUSY_FIELDS)
            # guest/guest_nice (fields 8, 9) are already counted in user/nice
            total = sum(values[:8])
            return busy / ticks_per_s, values[_STEAL_FIELD] / ticks_per_s, total / ticks_per_s
    raise ValueError("no aggregate 'cpu' line in /proc/stat")


def sample(stat_path: str | Path = "/proc/stat") -> CpuSample | None:
    """The machine's and this process's CPU clocks now (``None`` where ``/proc/stat`` is missing)."""
    try:
        text = Path(stat_path).read_text(encoding="ascii")
        ticks = float(os.sysconf("SC_CLK_TCK"))
        busy, steal, total = parse_proc_stat(text, ticks)
    except (OSError, ValueError, AttributeError):
        return None
    own = os.times()
    return CpuSample(at_s=time.monotonic(), busy_s=busy, steal_s=steal, total_s=total,
                     own_s=own.user + own.system)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    except OSError:
        return os.cpu_count() or 1


def busy_other_share() -> float:
    """The share of the machine others may use before a pass is busy (:data:`BUSY_SHARE_ENV` or the default)."""
    raw = os.environ.get(BUSY_SHARE_ENV, "").strip()
    if not raw:
        return BUSY_OTHER_SHARE
    try:
        value = float(raw)
    except ValueError:
        from qeval.errors import UsageError

        raise UsageError(f"{BUSY_SHARE_ENV}={raw!r}: give a share of the machine, e.g. 0.3 (above 1 turns the "
                         "busy judgement off).") from None
    return value


def between(start: CpuSample, end: CpuSample, cpus: int, load_avg_1m: float | None = None,
            probed_share: float | None = None) -> BackgroundLoad:
    """Pure: the background load over ``start`` .. ``end``.

    ``probed_share`` (remote targets) replaces the in-window share in the judgement: during the
    pass a local server's own work counts as "others"."""
    window = max(end.at_s - start.at_s, 1e-9)
    other = max((end.busy_s - start.busy_s) - (end.own_s - start.own_s), 0.0)
    share = min(other / (window * max(cpus, 1)), 1.0)
    total = end.total_s - start.total_s
    steal = (end.steal_s - start.steal_s) / total if total > 0 else None
    judged = share if probed_share is None else probed_share
    reasons = []
    if judged >= busy_other_share():
        where = "around the pass (quiet probes)" if probed_share is not None else "during the pass"
        reasons.append(f"other processes used {judged:.0%} of the machine's CPU {where}")
    if steal is not None and steal >= BUSY_STEAL_SHARE:
        reasons.append(f"the hypervisor took {steal:.0%} of the CPU time (steal)")
    return BackgroundLoad(
        window_s=window, cpus=cpus, other_cpu_s=other, other_share=share, steal_share=steal,
        load_avg_1m=load_avg_1m, busy=bool(reasons), reason="; ".join(reasons) or None, probed_share=probed_share,
    )


def _intra_op_threads() -> int | None:
    torch = sys.modules.get("torch")  # an in-process target has imported it; never import it here
    return int(torch.get_num_threads()) if torch is not None else None


def _load_avg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


class Meter:
    """Measures one window: ``with watch(remote) as meter: ...`` then ``meter.load``."""

    def __init__(self, remote: bool = False, probe_s: float = PROBE_S) -> None:
        self.remote = remote
        self.probe_s = probe_s
        self.load: BackgroundLoad | None = None
        self._probes: list[float] = []

    def probe(self) -> None:
        """A quiet window with nothing of ours in flight: others' share of the machine in it."""
        a = sample()
        time.sleep(self.probe_s)
        b = sample()
        if a is not None and b is not None:
            self._probes.append(between(a, b, _cpus()).other_share)


@contextmanager
def watch(remote: bool = False, probe_s: float = PROBE_S) -> Iterator[Meter]:
    """Record the background load of the block (``meter.load`` is set on exit, ``None`` off Linux)."""
    meter = Meter(remote, probe_s)
    if remote:
        meter.probe()
    start = sample()
    try:
        yield meter
    finally:
        end = sample()
        if remote:
            meter.probe()
        if start is not None and end is not None:
            probed = max(meter._probes) if meter._probes else None
            load = between(start, end, _cpus(), _load_avg(), probed_share=probed)
            meter.load = load if remote else replace(load, intra_op_threads=_intra_op_threads())
