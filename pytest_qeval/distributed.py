"""The plugin under pytest-xdist (``pytest -n N --qeval ...``): one run, whatever the workers.

- **Who evaluates what.** The controller schedules every SLO item of a target onto one worker
  (:func:`target_scheduling`, for ``--dist load``, the default of ``-n``, and ``loadgroup``), so a
  target's model is loaded once and its cells are evaluated together. The workers share the
  cells through a store in a temporary folder (:class:`SharedCells`): a worker evaluates a target
  while holding that target's file lock and stores its cells; a worker that needs the same cells
  (the reference of a drop SLO, a fixture) waits for the lock and reads them. Each cell is
  evaluated once, whichever worker asks first, under any ``--dist`` mode.
- **What reaches the controller.** At the end each worker puts its verdicts and the cells it
  evaluated, as a partial run record (:class:`WorkerResult`), in xdist's ``workeroutput``. The
  controller merges them (:func:`merge`) and alone writes the run folder, slo.md/slo.json, the
  regression report, the GitHub step summary and the baseline file, and prints the whole table.

Records travel pickled rather than as JSON: the JSON form of a record turns an unbounded
interval end into ``null``, and the controller must see exactly what the workers measured. The
store folder is made with :func:`tempfile.mkdtemp` (readable by its owner only), and both ends
are this user's processes on this machine. Workers must therefore share the controller's file
system: ``-n N`` (popen workers) does; remote ``--tx ssh=...`` workers are not supported.
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import pytest

from pytest_qeval.session import QevalSession, VerdictRow
from qeval.results import CellResult, RunRecord

WORKER_INPUT = "qeval"
"""Key of what the controller tells each worker (``workerinput``) and each worker answers (``workeroutput``)."""


def distributing(config: pytest.Config) -> bool:
    """Whether this process is the controller of an xdist run (xdist's own test, at configure time)."""
    return (
        config.pluginmanager.hasplugin("xdist")
        and not config.getoption("collectonly")
        and config.getoption("dist", "no") != "no"
        and bool(config.getoption("tx", None))
    )


def worker_input(config: pytest.Config) -> dict[str, str] | None:
    """What the controller told this xdist worker (None in any other process)."""
    given = getattr(config, "workerinput", None)
    return given.get(WORKER_INPUT) if isinstance(given, dict) else None


# --- the cells the workers share ---------------------------------------------------------------


@dataclass(frozen=True)
class StoredCell:
    cell: CellResult
    cached_from: str | None
    """The run id of the cache entry the cell came from (None: evaluated in this run)."""


if sys.platform == "win32":
    import msvcrt

    def _acquire(handle: IO[bytes]) -> None:
        while True:
            try:
                msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)  # gives up after 10 s: try again
                return
            except OSError:
                continue

    def _release(handle: IO[bytes]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _acquire(handle: IO[bytes]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # released by the OS too if the worker dies

    def _release(handle: IO[bytes]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class SharedCells:
    """Cells of one session, shared by its workers: ``cells/<target>-<suite>.pickle``, written
    while holding ``locks/<target>.lock`` (names hashed: targets and suites are user text)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        (self.folder / "cells").mkdir(parents=True, exist_ok=True)
        (self.folder / "locks").mkdir(parents=True, exist_ok=True)

    @contextmanager
    def lock(self, target: str) -> Iterator[None]:
        """Hold ``target``'s lock: no other worker evaluates or stores that target meanwhile."""
        with open(self.folder / "locks" / f"{_digest(target)}.lock", "a+b") as handle:
            _acquire(handle)
            try:
                yield
            finally:
                _release(handle)

    def get(self, suite: str, target: str) -> StoredCell | None:
        try:
            data = (self.folder / "cells" / self._name(suite, target)).read_bytes()
        except FileNotFoundError:
            return None
        stored = pickle.loads(data)
        assert isinstance(stored, StoredCell), "only SharedCells.put writes this folder"
        return stored

    def put(self, suite: str, target: str, cell: CellResult, cached_from: str | None) -> None:
        from qeval.files import atomic_write_bytes

        atomic_write_bytes(self.folder / "cells" / self._name(suite, target), pickle.dumps(StoredCell(cell, cached_from)))

    @staticmethod
    def _name(suite: str, target: str) -> str:
        return f"{_digest(target)}-{_digest(suite)}.pickle"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


# --- scheduling: a target's items on one worker -------------------------------------------------


def qeval_target_of(nodeid: str, root: Path, targets: Sequence[str]) -> str | None:
    """The target of a qeval item's node id (``suites/medical::int4::f1>=0.3`` → ``int4``), or None
    for any other test. The scheduler sees node ids only, so it recognises a suite folder on disk."""
    parts = nodeid.split("::")
    if len(parts) != 3 or parts[1] not in targets:
        return None
    return parts[1] if (root / parts[0] / "suite.yaml").is_file() else None


def target_scheduling(config: pytest.Config, log: Any, targets: Sequence[str]) -> Any:
    """xdist's ``loadgroup`` scheduling with every qeval item of one target in one group (other
    tests keep their ``xdist_group`` or run alone, as under ``load``)."""
    from xdist.scheduler import LoadGroupScheduling

    root = Path(config.rootpath)

    class TargetScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            target = qeval_target_of(nodeid, root, targets)
            return f"qeval target {target}" if target is not None else super()._split_scope(nodeid)

    return TargetScheduling(config, log)


# --- results: workers → controller ---------------------------------------------------------------


@dataclass(frozen=True)
class WorkerResult:
    """What one worker sends the controller when its session ends."""

    worker: str
    record: RunRecord | None
    """The cells this worker evaluated or took from the cache (None: none)."""
    verdicts: tuple[VerdictRow, ...]
    collected: tuple[str, ...]
    """Node ids of every item, in collection order (every worker collects them all)."""


def worker_result(config: pytest.Config, session: QevalSession) -> bytes:
    return pickle.dumps(WorkerResult(
        worker=str(getattr(config, "workerinput", {}).get("workerid", "?")),
        record=session.own_record(),
        verdicts=tuple(session.verdicts),
        collected=tuple(session.collected),
    ))


def merge(results: Sequence[WorkerResult], precisions: Sequence[str]) -> tuple[RunRecord | None, list[VerdictRow]]:
    """One run record and verdict list from the workers', as a run without xdist would have them:
    verdicts in collection order, cells and targets in target order."""
    collected = next((r.collected for r in results if r.collected), ())
    position = {nodeid: i for i, nodeid in enumerate(collected)}
    verdicts = sorted((v for r in results for v in r.verdicts), key=lambda v: position.get(v.nodeid, len(position)))
    records = [r.record for r in sorted(results, key=lambda r: _worker_number(r.worker)) if r.record is not None]
    if not records:
        return None, verdicts
    order = {p: i for i, p in enumerate(precisions)}
    cells = sorted({(c.suite, c.precision): c for rec in records for c in rec.cells}.values(),
                   key=lambda c: (order.get(c.precision, len(order)), c.suite))
    targets = sorted({t.name: t for rec in records for t in rec.targets}.values(),
                     key=lambda t: order.get(t.name, len(order)))
    cell_order = {(c.suite, c.precision): i for i, c in enumerate(cells)}
    cached = sorted({(c.suite, c.precision): c for rec in records for c in rec.settings.cached_cells}.values(),
                    key=lambda c: cell_order.get((c.suite, c.precision), len(cell_order)))
    variants = {v.label: v for rec in records for v in rec.settings.calibration_variants}
    first = records[0]
    settings = replace(
        first.settings,
        calibration=next((r.settings.calibration for r in records if r.settings.calibration is not None), None),
        calibration_variants=tuple(sorted(variants.values(), key=lambda v: order.get(v.label, len(order)))),
        cached_cells=tuple(cached),
        slos=tuple(v.slo for v in verdicts),
    )
    model = targets[0].card if targets else first.model
    return replace(first, model=model, cells=tuple(cells), targets=tuple(targets), settings=settings), verdicts


def _worker_number(worker: str) -> tuple[int, str]:
    digits = "".join(ch for ch in worker if ch.isdigit())
    return (int(digits) if digits else -1, worker)


class XdistController:
    """Registered on the xdist controller: hands the workers the run id and the shared store,
    groups each target's items onto one worker, and collects what the workers send back."""

    def __init__(self, session: QevalSession) -> None:
        self.session = session
        self.folder = Path(tempfile.mkdtemp(prefix="qeval-xdist-"))
        self.results: list[WorkerResult] = []
        self.lost: list[str] = []
        """Workers that went down without sending their results."""

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKER_INPUT] = {
            "store": str(self.folder), "run_id": self.session.run_id, "created_at": self.session.created_at,
        }

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if config.getvalue("dist") not in ("load", "loadgroup"):
            return None  # the user chose a scheduling: keep it; the shared store still evaluates each cell once
        return target_scheduling(config, log, self.session.options.precisions)

    def pytest_testnodedown(self, node: Any, error: object | None) -> None:
        payload = getattr(node, "workeroutput", {}).get(WORKER_INPUT)
        if payload is None:
            self.lost.append(str(getattr(node, "gateway", node)))
            return
        self.results.append(pickle.loads(payload))

    def finish(self) -> tuple[RunRecord | None, list[str]]:
        """Merge the workers' results into the controller's session; the merged record, and notes."""
        record, verdicts = merge(self.results, self.session.options.precisions)
        self.session.verdicts = verdicts
        if record is not None:
            self.session.cached = {(c.suite, c.precision): c.run_id for c in record.settings.cached_cells}
        notes = [f"qeval: worker {w} went down before sending its results; its verdicts are missing from the report."
                 for w in self.lost]
        return record, notes

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
