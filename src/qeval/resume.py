"""Finishing a killed or interrupted sweep from its journal (``qeval sweep --resume RUN_DIR``).

The journal's header holds the sweep's configuration as it was asked for, the
folder it was started from and the device it ran on; finished precisions and
finished accuracy-pass chunks follow (:mod:`qeval.journal`). Resuming rebuilds the
configuration (relative suite, model and calibration paths re-based on the folder
the run started from), refuses what would mix two different runs (another device,
changed suites), and hands over to the sweep, which skips the finished work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qeval.config import SweepConfig
from qeval.errors import QevalError


def _rebased(entry: str, cwd: Path) -> str:
    """``entry`` as given when the run started; re-based on that run's folder when it is a
    relative path that exists there but not from here."""
    path = Path(entry)
    if path.is_absolute() or path.exists() or not (cwd / path).exists():
        return entry
    return str(cwd / path)


def config_from_header(header: dict[str, Any], folder: Path, where: Path) -> SweepConfig:
    """The sweep configuration a journal header records, runnable from the current folder."""
    from qeval.journal import JournalError

    try:
        raw = dict(header["config"])
        cwd = Path(header.get("cwd") or ".")
        raw["suites"] = tuple(_rebased(str(e), cwd) for e in raw["suites"])
        if raw.get("model"):
            raw["model"] = _rebased(str(raw["model"]), cwd)
        from qeval.targets import TargetSpec

        raw["targets"] = tuple(
            TargetSpec(**{**t, "model": _rebased(str(t["model"]), cwd) if t.get("model") else t.get("model"),
                          "engine_args": tuple(t.get("engine_args") or ())})
            for t in raw.get("targets") or ()
        )
        raw["engine_executables"] = tuple(tuple(pair) for pair in raw.get("engine_executables") or ())
        raw["ray_resources"] = tuple(raw.get("ray_resources") or ())
        if raw.get("calibration"):
            # names (generic, medical) stay; relative .jsonl paths are re-based one by one
            raw["calibration"] = ",".join(_rebased(e.strip(), cwd) for e in str(raw["calibration"]).split(","))
        raw["precisions"] = tuple(raw["precisions"])
        raw["run_id"] = folder.name
        raw["out_dir"] = str(folder.parent)
        return SweepConfig(**raw)
    except (KeyError, TypeError, AttributeError) as exc:
        raise JournalError(f"{where}:1: the run header has no usable sweep config ({exc}).") from exc


def check_device(header: dict[str, Any], device: str, where: Path) -> None:
    """Refuse to finish on another device a run that started on one: latency, memory and
    (for bf16/fp16) the completions themselves depend on it."""
    from qeval.journal import JournalError

    started = header.get("device")
    if started is not None and started != device:
        raise JournalError(
            f"{where}: the run started on {started} and this machine resolves its --device "
            f"{header.get('config', {}).get('device', 'auto')!r} to {device}; the finished and the new cells "
            f"would not be comparable. Resume it on a machine with {started}, or start a new sweep."
        )


def resume_sweep(run_dir: str | Path, source=None, reporter=None,
                 executor: tuple[str, str, tuple[str, ...]] | None = None):
    """Finish the sweep journaled in ``run_dir`` (see :mod:`qeval.journal`).

    The configuration comes from the journal. Finished precisions are reused as
    they are; in a precision that was cut short, finished accuracy-pass chunks
    are reused and the rest generated (same chunk boundaries, so the case results
    equal a clean run's); its timed pass is run again, since timings cannot be
    stitched together. Refuses a finished run, another device and suites whose
    content changed. ``executor`` (name, Ray address, Ray resources) says where the rest runs
    (default: where the run started). Returns the record and the report folder."""
    from qeval.journal import JournalError, read_journal
    from qeval.models import resolve_device
    from qeval.sweep import _Silent, _sweep

    folder = Path(run_dir)
    state = read_journal(folder)
    reporter = reporter or _Silent()
    for note in state.notes:
        reporter.note(f"[yellow]note[/] {note}")
    if state.done:
        from qeval.report import read_record

        try:
            read_record(folder)
        except QevalError:
            # Finished, but its report is missing or damaged: rebuilt from the journal (no model is loaded).
            reporter.note(f"[yellow]note[/] {folder}: the run finished but its report is unreadable; rebuilding it")
        else:
            raise JournalError(
                f"{state.path}: this run finished already; its report is in {folder}. Start a new sweep instead."
            )
    header = state.header
    config = config_from_header(header, folder, state.path)
    if executor is not None:
        from dataclasses import replace

        name, address, resources = executor
        config = replace(config, executor=name, ray_address=address, ray_resources=tuple(resources))
    if header.get("run_id") != folder.name:
        raise JournalError(
            f"{state.path}: journal of run {header.get('run_id')!r} found in folder {folder.name!r}; "
            "resume from the run's own folder (the report folder is named after the run id)."
        )
    if not state.done:
        check_device(header, resolve_device(config.device), state.path)
    return _sweep(config, source, reporter, state=state)
