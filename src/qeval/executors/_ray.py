"""The Ray executor: each unit (one target's load with all its suites) is a Ray task.

The driver (the ``qeval sweep`` process) submits every unit at once, then waits on them with
``ray.wait`` and hands each result back as it finishes, so the sweep journals it at once; a
small actor relays what the tasks say while they run (started on which node, each finished
accuracy batch), which the driver journals too. A task whose worker dies (node lost, OOM kill)
is retried up to ``max_retries`` times by Ray (the retry reuses the accuracy batches the attempts
before it relayed, as a resume reuses journaled ones), then its cells are ``failed`` with Ray's words;
a usage error inside a task (a suite changed since planning) stops the sweep as it would
locally. Stopping (Ctrl-C) cancels every task still out (``ray.cancel(force=True)``).

Ray is imported only here, and only when a sweep asks for it.
"""

from __future__ import annotations

import sys
import sysconfig
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from qeval.cell import DoneBatch, Unit, UnitResult
from qeval.errors import QevalError, UsageError
from qeval.executors._base import ExecutorError
from qeval.executors._task_memory import TaskMemory, task_memory

RAY_PIN = "ray==2.60.0"
INSTALL = f"pip install 'qeval[ray]' (or: pip install {RAY_PIN})"
MAX_RETRIES = 2
"""Ray retries a task whose worker died this many times before its cells are failed."""
POLL_S = 0.5
"""How often the driver looks at Ctrl-C and at what the tasks relayed while it waits."""


def ray_missing() -> str | None:
    """Why Ray cannot be used here, or ``None``."""
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        return f"ray is not installed ({exc})"
    return None


def _require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ExecutorError(f"--executor ray: Ray is not installed in this Python ({sys.executable}). "
                            f"Install it with: {INSTALL}; or leave out --executor to run here.") from None
    return ray


class _Tracker:
    """The actor tasks tell what they are doing; the driver drains it while it waits."""

    def __init__(self) -> None:
        self._events: list[tuple[Any, ...]] = []
        self._relayed: dict[str, list[DoneBatch]] = {}

    def started(self, label: str, node: str) -> None:
        self._events.append(("started", label, node))

    def batch(self, label: str, suite: str, index: int, cases: Any, output_tokens: int, wall_s: float) -> None:
        self._events.append(("batch", label, suite, index, cases, output_tokens, wall_s))
        self._relayed.setdefault(label, []).append(DoneBatch(suite, index, tuple(cases), output_tokens, wall_s))

    def relayed(self, label: str) -> list[DoneBatch]:
        """The batches earlier attempts of ``label``'s task relayed: a retry reuses them."""
        return list(self._relayed.get(label, ()))

    def drain(self) -> list[tuple[Any, ...]]:
        events, self._events = self._events, []
        return events


class _Relay:
    """The journal a task's runner writes batches to: each goes to the tracker actor."""

    def __init__(self, tracker: Any) -> None:
        self._tracker = tracker

    def batch(self, label: str, suite: str, index: int, cases: Any, output_tokens: int, wall_s: float) -> None:
        self._tracker.batch.remote(label, suite, index, tuple(cases), output_tokens, wall_s)


def _run_task(unit: Unit, source: Any, tracker: Any) -> UnitResult:
    """What a Ray task runs: the unit, then the fingerprint of the node it ran on, on every cell."""
    import ray

    from qeval.cell import run_unit
    from qeval.environment import capture_environment
    from qeval.models import resolve_device
    from qeval.quantize import quiet

    if tracker is not None:
        tracker.started.remote(unit.label, ray.util.get_node_ip_address())
        # a retry (the first attempt's worker died) reuses the batches that attempt relayed
        unit = with_done_batches(unit, ray.get(tracker.relayed.remote(unit.label)))
    _threads_as_assigned(ray)
    with quiet():
        result = run_unit(unit, source, journal=_Relay(tracker) if tracker is not None else None)
    node = capture_environment(resolve_device(unit.cells[0].device)) if unit.cells else None
    return replace(result, cells=tuple(replace(c, node=node) for c in result.cells), node=node)


def with_done_batches(unit: Unit, batches: Sequence[DoneBatch]) -> Unit:
    """``unit`` reusing ``batches`` too (those it already had win: they came from the journal)."""
    have = {(b.suite, b.index) for b in unit.done_batches}
    more = tuple(b for b in batches if (b.suite, b.index) not in have)
    return replace(unit, done_batches=unit.done_batches + more) if more else unit


def _threads_as_assigned(ray: Any) -> None:
    """torch's intra-op threads = the CPUs Ray gave the task (Ray sets OMP_NUM_THREADS only for a
    worker's first task; a reused worker's torch kept the count of the task before)."""
    import math

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    if cpus is None:
        return
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(max(1, math.floor(cpus)))


def python_source(model: str | None) -> bool:
    """Whether a model spec names a Python ``module:attr`` source (not an alias, ``fake``, a
    replay file or a folder): the workers may not import the project's modules, so the source
    resolved here travels with the task, its own code by value."""
    from qeval.models import BUILTINS

    if not model or model in BUILTINS or model == "fake" or model.startswith("replay:") or ":" not in model:
        return False
    try:
        return not Path(model).expanduser().exists()
    except (OSError, RuntimeError, ValueError):
        return True


def _installed(module: Any) -> bool:
    """Whether ``module`` comes from an installed distribution or the standard library (the
    workers have those), rather than a file of the user's project."""
    roots = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib", "stdlib")}
    files = [getattr(module, "__file__", None)] + list(getattr(module, "__path__", []) or [])
    paths = [Path(f).resolve() for f in files if f]
    if not paths:
        return True  # built in
    return all(any(p.is_relative_to(r) for r in roots) or "site-packages" in p.parts for p in paths)


def ship_by_value(source: Any) -> list[str]:
    """Have Ray pickle the user's own modules that ``source`` refers to by value (their code travels
    with the task), so a ``module:attr`` model from the project folder runs on workers that cannot
    import it. Returns the packages so registered. qeval itself must be installed on the workers."""
    import ray.cloudpickle as cloudpickle

    names = {type(source).__module__}
    for value in (vars(source) if hasattr(source, "__dict__") else {}).values():
        if callable(value) and isinstance(getattr(value, "__module__", None), str):
            names.add(value.__module__)
    shipped = []
    for name in sorted(names):
        top = name.split(".")[0]
        module = sys.modules.get(top)
        if module is None or top in ("qeval", "pytest_qeval", "__main__") or _installed(module):
            continue
        cloudpickle.register_pickle_by_value(module)
        shipped.append(top)
    return shipped


class RayExecutor:
    """Units as Ray tasks on the cluster at ``address``.

    ``address``: ``auto`` (a running cluster if there is one, else a local Ray started for the
    run and shut down after it), ``local`` (always a new local Ray), or a cluster address
    (``ray://head:10001``, ``head:6379``). A Ray already initialised in this process is used as
    it is, and left running."""

    def __init__(self, address: str = "auto", source: Any = None, reporter: Any = None,
                 on_batch: Callable[..., None] | None = None, check: Callable[[], None] = lambda: None,
                 max_retries: int = MAX_RETRIES, resources: Sequence[str] = (),
                 source_for: Callable[[Unit], Any] | None = None) -> None:
        from qeval.runner import Silent

        self.address = address
        self.source = source
        self.source_for = source_for
        """Without ``source``: the model source a unit's task gets (``None``: resolved where it runs)."""
        self.reporter = reporter or Silent()
        self.on_batch = on_batch
        self.check = check
        self.max_retries = max_retries
        from qeval.options import parse_ray_resources

        try:
            self.resources = parse_ray_resources(resources)
        except ValueError as exc:
            raise ExecutorError(f"--ray-resources: {exc}") from None
        self._started = False
        self._ray: Any = None
        self._shipped: set[str] = set()

    # -- connection ---------------------------------------------------------------------------

    def connect(self) -> Any:
        """Connect (or start a local Ray) once; returns the ``ray`` module."""
        if self._ray is not None:
            return self._ray
        ray = _require_ray()
        if not ray.is_initialized():
            address = None if self.address == "auto" else self.address
            try:
                context = ray.init(address=address, logging_level="WARNING", log_to_driver=False,
                                   configure_logging=True)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ExecutorError(
                    f"--ray-address {self.address}: cannot connect to Ray ({type(exc).__name__}: {exc}). Give the "
                    "address of a running cluster (ray://HEAD:10001, or HEAD:6379 on a cluster node), 'auto' to use "
                    "the one this machine runs or start a local one, or 'local'."
                ) from None
            self._started = True
            url = getattr(context, "dashboard_url", None)
        else:
            url = _dashboard_url()
        self._ray = ray
        cpus, gpus = ray.cluster_resources().get("CPU", 0), ray.cluster_resources().get("GPU", 0)
        self.reporter.note(f"[bold]ray[/]: cluster of {cpus:g} CPU(s), {gpus:g} GPU(s)"
                           + (f"; dashboard http://{url}" if url else "; no dashboard"))
        return ray

    def close(self) -> None:
        """Shut down the Ray this executor started (a Ray it found initialised stays)."""
        if self._ray is not None and self._started:
            self._ray.shutdown()
        self._ray, self._started = None, False

    # -- running ------------------------------------------------------------------------------

    def run(self, units: Sequence[Unit]) -> Iterator[UnitResult]:
        if not units:
            return
        ray = self.connect()
        gpus = ray.cluster_resources().get("GPU", 0)
        tracker = ray.remote(num_cpus=0)(_Tracker).remote()
        task = ray.remote(_run_task)
        stored: dict[int, Any] = {}
        out: dict[Any, Unit] = {}
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        unplaceable: list[UnitResult] = []
        for unit in units:
            asked = self._resources(unit, gpus, nodes)
            if not any(_fits(asked, node) for node in nodes):
                what = ", ".join(f"{k}={v:g}" for k, v in asked.items() if v)
                if self._started:  # a Ray of our own: no autoscaler will add a node that fits
                    unplaceable.append(self._failed(unit, f"its Ray task asks for {what}, which no node of this "
                                                          "Ray has; change --ray-resources or --device"))
                    continue
                self.reporter.note(f"[yellow]note[/] ray: {unit.label} asks for {what}, which no node has now; it "
                                   "waits for one (an autoscaler may add it). Ctrl-C stops the sweep.")
            source = self.source if self.source is not None else (self.source_for(unit) if self.source_for else None)
            if source is not None and id(source) not in stored:
                shipped = [m for m in ship_by_value(source) if m not in self._shipped]
                self._shipped.update(shipped)
                if shipped:
                    self.reporter.note(f"[dim]ray: the model source's own code ({', '.join(shipped)}) travels with "
                                       "the tasks[/]")
                stored[id(source)] = ray.put(source)
            options = {**asked, "max_retries": self.max_retries, "name": f"qeval {unit.label}"}
            out[task.options(**options).remote(unit, stored.get(id(source)), tracker)] = unit
        progress = _Progress(units)
        pending = list(out)
        for result in unplaceable:
            progress.finished(result.label)
            yield result
        try:
            while pending:
                self.check()
                done, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
                self._relay(ray, tracker, progress)
                for ref in done:
                    result = self._result(ray, ref, out[ref])
                    progress.finished(result.label)
                    self.reporter.note(progress.line(f"{result.label} done" + _where(result)))
                    yield result
        except KeyboardInterrupt:
            self._cancel(ray, pending)
            from qeval.runner import SweepInterrupted

            raise SweepInterrupted() from None
        except BaseException:
            self._cancel(ray, pending)
            raise
        finally:
            try:
                ray.kill(tracker)
            except Exception:  # noqa: BLE001 - the cluster may be gone already
                pass

    def _resources(self, unit: Unit, gpus: float, nodes: list[dict[str, float]]) -> dict[str, float]:
        """The unit's request, with its memory estimate unless ``--ray-resources`` gives one. An
        estimate no node can meet is dropped (said, not failed): it is a guess, and the task may fit."""
        if memory_asked(unit, self.resources):
            return resources_for(unit, gpus, self.resources)
        estimate = task_memory(unit.cells[0].target)
        asked = resources_for(unit, gpus, self.resources, estimate)
        if estimate.memory_bytes is None:
            return asked
        gib = estimate.memory_bytes / (1 << 30)
        if nodes and not any(_fits(asked, node) for node in nodes):
            self.reporter.note(f"[yellow]note[/] ray: {unit.label} would ask for {gib:.1f} GiB of memory "
                               f"({estimate.how}), more than any node offers; it asks for none. Give "
                               f"--ray-resources {unit.label}:memory=BYTES to choose.")
            asked.pop("memory")
        else:
            self.reporter.note(f"[dim]ray: {unit.label} asks for {gib:.1f} GiB of memory ({estimate.how}); "
                               f"--ray-resources {unit.label}:memory=BYTES changes it[/]")
        return asked

    def _relay(self, ray: Any, tracker: Any, progress: _Progress) -> None:
        try:
            events = ray.get(tracker.drain.remote(), timeout=30)
        except Exception as exc:  # noqa: BLE001 - progress is not worth failing the sweep over
            self.reporter.note(f"[yellow]note[/] ray: no progress from the tasks ({type(exc).__name__})")
            return
        for event in events:
            if event[0] == "started":
                _, label, node = event
                if progress.started(label):
                    self.reporter.note(progress.line(f"{label} started on {node}"))
            elif event[0] == "batch" and self.on_batch is not None:
                _, label, suite, index, cases, tokens, wall = event
                if progress.new_batch(label, suite, index):
                    self.on_batch(label, suite, index, cases, tokens, wall)

    def _result(self, ray: Any, ref: Any, unit: Unit) -> UnitResult:
        from ray.exceptions import RayError, RayTaskError

        from qeval.runner import error_text

        try:
            result: UnitResult = ray.get(ref)
            return result
        except RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, QevalError) and isinstance(cause, UsageError):
                raise cause from None  # the user's mistake stops the sweep, as it does locally
            reason = f"the Ray task failed: {error_text(cause) if isinstance(cause, BaseException) else _first(exc)}"
        except RayError as exc:
            reason = f"the Ray task failed after {self.max_retries} retries: {type(exc).__name__}: {_first(exc)}"
        return self._failed(unit, reason)

    def _failed(self, unit: Unit, reason: str) -> UnitResult:
        from qeval.runner import empty_cell

        self.reporter.note(f"[red]failed[/] {unit.label}: {reason}")
        cells = tuple(empty_cell(unit.label, name, "failed", reason) for name in unit.suite_names)
        return UnitResult(unit.label, cells)

    def _cancel(self, ray: Any, pending: Sequence[Any]) -> None:
        for ref in pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - finished or gone meanwhile
                pass
        if pending:
            self.reporter.note(f"[yellow]ray[/]: cancelled {len(pending)} unfinished task(s)")


def resources_for(unit: Unit, cluster_gpus: float, asked: dict[str | None, dict[str, float]],
                  memory: TaskMemory | None = None) -> dict[str, float]:
    """What the unit's task asks Ray for: one CPU; one GPU for a CUDA target (``--device cuda``, or
    ``auto`` on a cluster with GPUs; an endpoint's task only sends requests); the ``memory``
    estimate where there is one (:mod:`qeval.executors._task_memory`); then what
    ``--ray-resources`` asks for every target, then for this one (by target name or label)."""
    spec = unit.cells[0]
    gpu = spec.target.kind != "openai" and (spec.device == "cuda" or (spec.device == "auto" and cluster_gpus > 0))
    out = {"num_cpus": 1.0, "num_gpus": 1.0 if gpu else 0.0}
    if memory is not None and memory.memory_bytes is not None:
        out["memory"] = float(memory.memory_bytes)
    for key in (None, spec.target.name, unit.label):
        out.update(asked.get(key, {}))
    return out


def memory_asked(unit: Unit, asked: dict[str | None, dict[str, float]]) -> bool:
    """Whether ``--ray-resources`` gives this unit's task a memory request of its own."""
    return any("memory" in asked.get(key, {}) for key in (None, unit.cells[0].target.name, unit.label))


def _fits(asked: dict[str, float], node: dict[str, float]) -> bool:
    names = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}
    return all(node.get(names[k], 0) >= v for k, v in asked.items() if v)


def _dashboard_url() -> str | None:
    """The dashboard of the Ray this process is already connected to, if it runs one."""
    try:
        from ray._private.worker import get_dashboard_url

        url = get_dashboard_url()
    except Exception:  # noqa: BLE001 - a private helper: no link rather than no sweep
        return None
    return str(url) if url else None


def _first(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _where(result: UnitResult) -> str:
    node = result.node
    if node is None:
        return ""
    return f" ({node.device}, {node.device_name or '?'}, host {node.host_id or '?'})"


class _Progress:
    """Cells done / running / queued, from what the tasks relayed and what came back."""

    def __init__(self, units: Sequence[Unit]) -> None:
        self._cells = {u.label: len(u.cells) for u in units}
        self._running: set[str] = set()
        self._done: set[str] = set()
        self._batches: set[tuple[str, str, int]] = set()

    def started(self, label: str) -> bool:
        if label in self._running or label in self._done:
            return False  # a retry, or news that came after the result
        self._running.add(label)
        return True

    def finished(self, label: str) -> None:
        self._running.discard(label)
        self._done.add(label)

    def new_batch(self, label: str, suite: str, index: int) -> bool:
        key = (label, suite, index)
        if label in self._done or key in self._batches:
            return False  # a retried task's repeat, or a unit already journaled whole
        self._batches.add(key)
        return True

    def line(self, what: str) -> str:
        count = self._cells
        done = sum(count[label] for label in self._done)
        running = sum(count[label] for label in self._running)
        queued = sum(count.values()) - done - running
        return f"[bold]ray[/] {what}: cells {done} done, {running} running, {queued} queued"
