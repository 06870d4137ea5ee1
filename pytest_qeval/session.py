"""Run state of one pytest session: suites collected, cells evaluated once, verdicts.

A cell (suite × precision) is evaluated at most once per session, on first need,
and every suite of the session is evaluated on the same model load. Cells are
reused across sessions through :class:`qeval.cache.CellCache` when nothing that
matters changed. Heavy imports (torch, transformers) happen only when a cell
actually has to be evaluated.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_qeval.options import Options
from qeval.results import CachedCell, CellResult, Environment, RunRecord

if TYPE_CHECKING:
    from pytest_qeval.distributed import SharedCells


@dataclass(frozen=True)
class VerdictRow:
    """One SLO item's outcome, as shown in the summary and written to slo.json."""

    nodeid: str
    suite: str
    precision: str
    slo: str
    outcome: str
    """pass, fail, inconclusive, skipped or error."""
    value: float | None = None
    ci: tuple[float, float] | None = None
    n: int = 0
    rule: str = ""
    method: str = ""
    needed_n: int | None = None
    message: str = ""
    lost: tuple[Any, ...] = ()
    gained: tuple[Any, ...] = ()
    cached: bool = False


@dataclass
class QevalSession:
    options: Options
    cache_dir: Path | None
    write_line: Any = print
    """Progress lines go here (the terminal reporter's write_line)."""
    suites: dict[str, Any] = field(default_factory=dict)
    """Suite name → loaded (and limited) Suite, in collection order."""
    cells: dict[tuple[str, str], CellResult] = field(default_factory=dict)
    cached: dict[tuple[str, str], str] = field(default_factory=dict)
    """(suite, precision) → run id of the cached cell reused."""
    verdicts: list[VerdictRow] = field(default_factory=list)
    collected: list[str] = field(default_factory=list)
    """Node ids of every item collected, in order (an xdist worker sends it to order the verdicts)."""
    baseline: RunRecord | None = None
    run_id: str = ""
    """Given by the xdist controller to its workers (one run, one folder); else made here."""
    created_at: str = ""
    shared: SharedCells | None = None
    """Under pytest-xdist: the cells every worker of the session sees (each evaluated once)."""
    _source: Any = None
    _device: str | None = None
    _environment: Environment | None = None
    _models: dict[str, Any] = field(default_factory=dict)
    _calibrations: dict[int, Any] = field(default_factory=dict)
    _targets: dict[str, Any] = field(default_factory=dict)
    _sources: dict[str, Any] = field(default_factory=dict)
    needed: tuple[str, ...] = ()
    """The targets the collected items need, their own and those their SLOs compare against (with
    ``--qeval-executor ray`` they are submitted together when the first item needs one)."""
    _ray: Any = None
    """The Ray executor (``--qeval-executor ray``), connected on first need."""
    _from_shared: set[tuple[str, str]] = field(default_factory=set)
    """Cells another xdist worker evaluated: that worker reports them."""

    def __post_init__(self) -> None:
        from qeval.run_id import new_run_id

        self.run_id = self.run_id or new_run_id()
        self.created_at = self.created_at or datetime.now(timezone.utc).isoformat(timespec="seconds")
        if self.options.baseline is not None:
            from qeval.report import read_record

            self.baseline = read_record(self.options.baseline)

    # --- suites ----------------------------------------------------------------------------

    def add_suite(self, path: Path) -> Any:
        """Load the suite at ``path`` (limited by --qeval-limit) once; return it."""
        from qeval.errors import UsageError
        from qeval.suites import load_suite

        suite = load_suite(path).limited(self.options.limit)
        known = self.suites.get(suite.name)
        if known is not None and Path(known.path).resolve() != Path(suite.path).resolve():
            raise UsageError(
                f"Two suites are named {suite.name!r}: {known.path} and {suite.path}. Suite names must be unique "
                "in one run (results and baselines are keyed by name); rename one in its suite.yaml."
            )
        self.suites.setdefault(suite.name, suite)
        return self.suites[suite.name]

    def suite_named(self, name_or_path: str) -> Any:
        """A suite by name (already collected) or by folder path (loaded now)."""
        if name_or_path in self.suites:
            return self.suites[name_or_path]
        from qeval.sweep import expand_suite_paths

        paths = expand_suite_paths([name_or_path])
        if len(paths) != 1:
            from qeval.errors import UsageError

            raise UsageError(f"{name_or_path!r} names {len(paths)} suites; give one suite folder or name.")
        return self.add_suite(paths[0])

    # --- evaluation ------------------------------------------------------------------------

    @property
    def device(self) -> str:
        if self._device is None:
            from qeval.models import resolve_device

            self._device = resolve_device(self.options.device)
        return self._device

    @property
    def source(self) -> Any:
        if self._source is None:
            from qeval.models import resolve_model

            self._source = resolve_model(self.options.model)
        return self._source

    @property
    def environment(self) -> Environment:
        if self._environment is None:
            from qeval.environment import capture_environment

            # a fully cached re-run then never imports torch (most of its time otherwise)
            self._environment = capture_environment(self.device, torch_probe_dir=self.cache_dir)
        return self._environment

    def sweep_config(self) -> Any:
        from qeval.config import SweepConfig

        o = self.options
        return SweepConfig(
            model=o.model, precisions=o.precisions, suites=tuple(str(s.path) for s in self.suites.values()),
            targets=o.targets, concurrency=o.concurrency, request_timeout_s=o.request_timeout,
            device=o.device, limit=o.limit, latency_samples=o.latency_samples, warmup_requests=o.warmup,
            batch_size=o.batch_size, out_dir=str(o.report), run_id=self.run_id,
            calibration=o.calibration, calibration_samples=o.calibration_samples, calibration_seed=o.calibration_seed,
            calibration_seeds=o.calibration_seeds, pair_latency=not o.no_latency_pairing,
        )

    @property
    def calibration(self) -> Any:
        """The calibration sample of ``--qeval-calibration-seed``, loaded on first need."""
        return self.calibration_for(self.options.calibration_seed)

    def calibration_for(self, seed: int) -> Any:
        """The calibration sample drawn with ``seed`` (None without ``--qeval-calibration``)."""
        o = self.options
        if seed not in self._calibrations and o.calibration:
            from qeval.calibration import load_calibration

            self._calibrations[seed] = load_calibration(o.calibration, samples=o.calibration_samples, seed=seed)
        return self._calibrations.get(seed)

    def variant(self, name: str) -> Any:
        """The :class:`qeval.variants.Variant` called ``name`` (``--qeval-calibration-seeds``), or None."""
        return next((v for v in self.options.variants if v.label == name), None)

    def _seed(self, name: str) -> int:
        variant = self.variant(name)
        return variant.seed if variant is not None and variant.seed is not None else self.options.calibration_seed

    def cell(self, suite_name: str, precision: str) -> CellResult:
        """The cell for (suite, precision): from this session, the cache, or evaluated now
        together with every other pending suite at that precision (one model load)."""
        key = (suite_name, precision)
        if key not in self.cells:
            self._evaluate(precision)
        return self.cells[key]

    def target_spec(self, name: str) -> Any:
        """The target called ``name`` (``--qeval-target``, a precision of ``--qeval-model``, or
        one calibration seed of either, under its own name)."""
        from dataclasses import replace

        from qeval.targets import TargetSpec

        variant = self.variant(name)
        if variant is not None and variant.target is not None:
            return replace(variant.target, name=name)
        if variant is not None:
            return TargetSpec(name=name, kind="model", model=self.options.model, precision=variant.precision.name)
        for spec in self.options.targets:
            if spec.name == name:
                return spec
        return TargetSpec(name=name, kind="model", model=self.options.model, precision=name)

    def target(self, name: str) -> Any:
        """A provisionable target for ``name`` (endpoints are identified the first time)."""
        if name not in self._targets:
            from dataclasses import replace

            from qeval.targets import InProcessTarget, build_targets, precision_of

            spec = self.target_spec(name)
            source = None
            if spec.kind == "model":
                source = self.source if spec.model == self.options.model else self._source_for(str(spec.model))
            from qeval.targets._managed import ManagedTarget

            o = self.options
            # an endpoint that is down fails here: a usage error within seconds, not a hang
            target = build_targets((spec,), source, concurrency=o.concurrency, request_timeout_s=o.request_timeout,
                                   servers_dir=Path(o.report) / self.run_id / "servers",
                                   engine_executables={k: v for k, v in (("vllm", o.vllm), ("llamacpp", o.llamacpp)) if v})[name]
            if isinstance(target, InProcessTarget | ManagedTarget) and precision_of(spec).needs_calibration:
                target = replace(target, calibration=self.calibration_for(self._seed(name)))
            self._targets[name] = target
        return self._targets[name]

    def _source_for(self, model: str) -> Any:
        if model not in self._sources:
            from qeval.models import resolve_model

            self._sources[model] = resolve_model(model)
        return self._sources[model]

    def _evaluate(self, precision_name: str) -> None:
        if self.shared is None:
            self._evaluate_here(precision_name)
            return
        # Under xdist: one worker at a time per target. Whatever another worker already evaluated
        # (a reference its own SLOs needed, say) is taken from the shared store, the rest is
        # evaluated here and stored for the others.
        with self.shared.lock(precision_name):
            for suite in self.suites.values():
                key = (suite.name, precision_name)
                stored = None if key in self.cells else self.shared.get(suite.name, precision_name)
                if stored is not None:
                    self.cells[key] = stored.cell
                    self._from_shared.add(key)
                    if stored.cached_from is not None:
                        self.cached[key] = stored.cached_from
            before = set(self.cells)
            # one evaluation at a time across workers: another worker's model running meanwhile would
            # be in this one's timed passes (and mark them busy)
            with self.shared.lock("qeval: evaluating"):
                self._evaluate_here(precision_name)
            for key in self.cells.keys() - before:
                self.shared.put(key[0], key[1], self.cells[key], self.cached.get(key))

    def _evaluate_here(self, precision_name: str) -> None:
        from qeval.quantize import quiet
        from qeval.runner import run_target

        if self.options.executor == "ray":
            # every target the items need, submitted at once (under xdist, this worker's one target)
            others = [n for n in self.needed if n != precision_name] if self.shared is None else []
            self._evaluate_on_ray([precision_name, *others])
            return
        spec, todo, cache, keys = self._pending(precision_name)
        if not todo:
            return
        target = self.target(precision_name)
        reference = self.latency_reference(precision_name)
        with quiet():
            cells = run_target(target, todo, self.device, self.sweep_config(), _Lines(self.write_line),
                               precision_name, reference=reference)
        self._keep(precision_name, todo, cells, cache, keys)

    def _pending(self, name: str) -> tuple[Any, list[Any], Any, dict[str, str]]:
        """Target ``name``'s spec, the suites it still has to run (cache hits taken now), its cell
        cache and the cache keys; says what it is about to evaluate."""
        spec = self.target_spec(name)
        pending = [s for s in self.suites.values() if (s.name, name) not in self.cells]
        cache = self._cache() if self._cacheable(spec) else None
        keys = {s.name: self._cache_key(s, spec) for s in pending} if cache else {}
        todo = []
        for suite in pending:
            hit = cache.get(keys[suite.name]) if cache else None
            if hit is not None:
                self.cells[(suite.name, name)] = hit.cell
                self.cached[(suite.name, name)] = hit.run_id
            else:
                todo.append(suite)
        if todo:
            names = ", ".join(f"{s.name} ({len(s.cases)} cases)" for s in todo)
            what = (f"{spec.model} at {spec.precision}" if spec.kind == "model" and spec.name == spec.precision
                    else f"{spec.name} ({spec.spec})")
            self.write_line(f"qeval: evaluating {what} on {names} ...")
        return spec, todo, cache, keys

    def _keep(self, name: str, todo: list[Any], cells: list[CellResult], cache: Any, keys: dict[str, str]) -> None:
        for suite, cell in zip(todo, cells):
            self.cells[(suite.name, name)] = cell
            if cache:
                cache.put(keys[suite.name], cell, self.run_id, self.created_at)
        self.write_line(f"qeval: {name} done: " + ", ".join(f"{c.suite} {c.status}" for c in cells))

    def _evaluate_on_ray(self, names: list[str]) -> None:
        """Targets ``names`` on the suites they still need, one Ray task each, all at once
        (``--qeval-executor ray``); each target's cells are kept as its task comes back."""
        from qeval.cell import CellSpec, PairedReference, Unit

        o = self.options
        if self._ray is None:
            from qeval.executors import RayExecutor

            self._ray = RayExecutor(o.ray_address, reporter=_Lines(self.write_line), resources=o.ray_resources)
        units, work = [], {}
        for name in names:
            spec, todo, cache, keys = self._pending(name)
            if not todo:
                continue
            cells = tuple(
                CellSpec(target=spec, suite=str(s.path), suite_hash=s.content_hash, limit=o.limit,
                         batch_size=o.batch_size, latency_samples=o.latency_samples, warmup_requests=o.warmup,
                         device=o.device, concurrency=o.concurrency, request_timeout_s=o.request_timeout)
                for s in todo
            )
            first = self.latency_reference_name(name)
            reference = None if first is None else PairedReference(first, self.target_spec(first),
                                                                   self._calibration_of(first))
            units.append(Unit(
                label=name, cells=cells, calibration=self._calibration_of(name), reference=reference,
                suite_names=tuple(s.name for s in todo), servers_dir=str(Path(o.report) / self.run_id / "servers"),
                engine_executables=tuple((k, v) for k, v in (("vllm", o.vllm), ("llamacpp", o.llamacpp)) if v),
                cwd=str(Path.cwd()),
            ))
            work[name] = (todo, cache, keys)
        self._ray.source_for = lambda unit: self._shipped_source(unit.cells[0].target, unit.reference)
        for result in self._ray.run(units):
            todo, cache, keys = work[result.label]
            self._keep(result.label, todo, list(result.cells), cache, keys)

    def _calibration_of(self, name: str) -> Any:
        from qeval.targets import precision_of

        precision = precision_of(self.target_spec(name))
        return self.calibration_for(self._seed(name)) if precision is not None and precision.needs_calibration else None

    def _shipped_source(self, spec: Any, reference: Any) -> Any:
        """The model source a Ray task gets from here: a ``module:attr`` model of the project (the workers
        may not import it; its code travels with the task); other models are resolved where the task runs."""
        from qeval.executors._ray import python_source

        model = spec.model if spec.kind == "model" else None
        same = reference is None or reference.target.kind != "model" or reference.target.model == model
        if model is None or not same or not python_source(model):
            return None
        return self._source_for(model) if model != self.options.model else self.source

    def latency_reference_name(self, name: str) -> str | None:
        """The first target, whose requests ``name``'s timed passes alternate with (ABBA), or ``None``
        (for the first itself, without timing, or with ``--qeval-no-latency-pairing``)."""
        o = self.options
        first = o.precisions[0] if o.precisions else None
        if first is None or name == first or o.no_latency_pairing or o.latency_samples <= 0:
            return None
        if self.target_spec(first).managed or self.target_spec(name).managed:
            return None  # one server at a time: a managed target's timed passes run on their own
        return first

    def latency_reference(self, name: str) -> Any:
        from qeval.runner import Reference

        first = self.latency_reference_name(name)
        return None if first is None else Reference(first, self.target(first))

    @staticmethod
    def _cacheable(spec: Any) -> bool:
        """An endpoint's cells are reused only when the user vouches for what it serves
        (``--qeval-target-revision``): the same URL can serve another model tomorrow."""
        return spec.kind != "openai" or spec.revision is not None

    def _cache(self) -> Any:
        if self.options.no_cache or self.cache_dir is None:
            return None
        from qeval.cache import CellCache

        return CellCache(self.cache_dir)

    @functools.cached_property
    def _model_identity(self) -> dict[str, Any]:
        # Stats every file of the model folder: once per session, not once per cell.
        from qeval.cache import model_identity

        return model_identity(self.options.model, self.source)

    def _cache_key(self, suite: Any, spec: Any) -> str:
        from qeval.cache import cell_key, code_identity
        from qeval.environment import compared_values
        from qeval.evaluate import effective_settings
        from qeval.results import to_dict

        o = self.options
        if spec.kind == "openai":
            import socket

            what: dict[str, Any] = {
                "endpoint": {"url": spec.url, "served_model": spec.served_model, "revision": spec.revision},
                "concurrency": o.concurrency,
                "client_host": socket.gethostname(),  # latency is from this client to that server
            }
        elif spec.managed:
            from qeval.engines import engine_precision

            target = self.target(spec.name)
            managed = engine_precision(spec.kind, str(spec.precision))
            what = {
                # the model folder (or GGUF) by content, the engine by version and arguments: the
                # checkpoint qeval prepares from them is keyed the same way
                "model": self._identity_of(str(spec.model)) if spec.kind == "vllm" else {"spec": spec.model},
                "engine": {"name": spec.kind, "version": target.engine.version(), "args": list(spec.engine_args)},
                "precision": managed.name,
                "calibration": self.calibration_for(self._seed(spec.name)).record() if managed.needs_calibration else None,
                "machine": compared_values(self.environment),
            }
        else:
            from qeval.quantize import get_precision

            precision = get_precision(str(spec.precision))
            model_identity = self._model_identity if spec.model == o.model else self._identity_of(str(spec.model))
            what = {
                "model": model_identity,
                "precision": precision.name,
                "precision_config": to_dict(precision.config),
                "calibration": self.calibration_for(self._seed(spec.name)).record() if precision.needs_calibration else None,
                "machine": compared_values(self.environment),
            }
        return cell_key({
            **what,
            "target": spec.name,
            "suite": suite.name,
            "suite_hash": suite.content_hash,
            "cases": [c.id for c in suite.cases],
            "generation": to_dict(effective_settings(suite, o.batch_size)),
            "timing": {"latency_samples": o.latency_samples, "warmup": o.warmup,
                       # a paired pass's ratios are against this reference: another one is another cell
                       "paired_with": None if (ref := self.latency_reference_name(spec.name)) is None
                       else self.target_spec(ref).spec},
            "code": code_identity(),
        })

    def _identity_of(self, model: str) -> dict[str, Any]:
        from qeval.cache import model_identity

        return dict(model_identity(model, self._source_for(model)))

    def model(self, precision: str) -> Any:
        """A provisioned model for target ``precision`` (a precision name or a ``--qeval-target``
        name) for hand-written tests, provisioned once per session."""
        if precision not in self._models:
            from qeval.quantize import quiet

            with quiet():
                self._models[precision] = self.target(precision).provision(self.device).model
        return self._models[precision]

    def close(self) -> None:
        for model in self._models.values():
            model.close()
        self._models.clear()
        if self._ray is not None:
            self._ray.close()
            self._ray = None

    # --- the run as a record ---------------------------------------------------------------

    def record(self) -> RunRecord | None:
        """Every cell this session holds, as one run record (None when nothing was evaluated)."""
        return self._record_of(self.cells)

    def own_record(self) -> RunRecord | None:
        """The cells this xdist worker evaluated or took from the cache (not those it read from
        another worker), as a run record for the controller to merge; None if there are none."""
        return self._record_of({k: c for k, c in self.cells.items() if k not in self._from_shared})

    def _record_of(self, held: dict[tuple[str, str], CellResult]) -> RunRecord | None:
        if not held:
            return None
        from dataclasses import replace

        from qeval.sweep import run_settings, target_records

        order = {p: i for i, p in enumerate(self.options.precisions)}
        cells = sorted(held.values(), key=lambda c: (order.get(c.precision, len(order)), c.suite))
        # A calibrated cell records its calibration; the run records it once more, like a sweep.
        needs = any(c.precision_config.calibration is not None for c in cells)
        names = {c.precision for c in cells}
        variants = [v for v in self.options.variants if v.label in names]
        calibrations = {(v.calibration, v.seed): self.calibration_for(v.seed) for v in variants if v.seed is not None}
        settings = replace(
            run_settings(self.sweep_config(), list(self.suites.values()), self.device,
                         self.calibration if needs else None, variants, calibrations),
            cached_cells=tuple(CachedCell(suite=s, precision=p, run_id=run)
                               for (s, p), run in self.cached.items() if (s, p) in held),
            slos=tuple(v.slo for v in self.verdicts),
        )
        targets = {name: self.target(name) for name in self.options.precisions
                   if name in names} if self.options.targets else {}
        model = next(iter(targets.values())).card if targets else self.source.card
        return RunRecord(
            run_id=self.run_id, created_at=self.created_at, model=model,
            environment=self.environment, settings=settings, cells=tuple(cells), targets=target_records(targets),
        )


class _Lines:
    """Sweep progress as plain lines (pytest owns the terminal; no progress bars)."""

    def __init__(self, write_line: Any) -> None:
        self._write = write_line

    def task(self, description: str, total: int) -> None:
        self._write(f"qeval:   {' '.join(description.split())} ({total})")

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, text: str) -> None:
        import re

        self._write("qeval: " + re.sub(r"\[/?[a-z ]*\]", "", text))

