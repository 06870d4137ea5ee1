"""pytest hooks of the qeval plugin (entry point ``qeval``; disable with ``-p no:qeval``).

Without ``--qeval`` the plugin only declares its options and fixtures: nothing is
collected, and neither torch nor the model code is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_qeval.fixtures import qeval_model, qeval_run  # noqa: F401 - registers the fixtures
from pytest_qeval.options import ENABLE, add_options, read_options
from pytest_qeval.nodes import SESSION_KEY, SuiteDirectory

_NOTES_KEY = pytest.StashKey[list]()
_RECORD_KEY = pytest.StashKey[Any]()
"""The run's record as reported (under xdist: the workers' merged), for the terminal summary."""
_CONTROLLER_KEY = pytest.StashKey[Any]()
"""The :class:`pytest_qeval.distributed.XdistController` when this process runs xdist workers."""


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def _active(config: pytest.Config) -> bool:
    return bool(config.getoption(ENABLE))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "qeval: items generated from suite folders by the qeval plugin")
    if not _active(config):
        return
    from qeval.errors import QevalError

    from pytest_qeval.session import QevalSession

    options = read_options(config)
    cache_dir = None
    if not options.no_cache:
        cache = getattr(config, "cache", None)
        if cache is not None:
            cache_dir = cache.mkdir("qeval-cells")
        else:
            from qeval.models import cache_dir as qeval_cache

            cache_dir = qeval_cache() / "cells"
    def write_line(text: str) -> None:
        # Progress during a long evaluation goes straight to the terminal, past output capture.
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        if capture is None:
            reporter.ensure_newline()
            reporter.write_line(text)
            return
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            reporter.write_line(text)

    from pytest_qeval.distributed import SharedCells, XdistController, distributing, worker_input

    given = worker_input(config)  # an xdist worker: the controller's run id and shared cells
    try:
        qs = QevalSession(
            options=options, cache_dir=cache_dir, write_line=write_line,
            run_id=given["run_id"] if given else "", created_at=given["created_at"] if given else "",
            shared=SharedCells(given["store"]) if given else None,
        )
    except QevalError as exc:
        raise pytest.UsageError(f"--qeval-baseline: {exc}") from None
    config.stash[SESSION_KEY] = qs
    if distributing(config):
        controller = XdistController(qs)
        config.stash[_CONTROLLER_KEY] = controller
        config.pluginmanager.register(controller, "qeval-xdist-controller")


def pytest_unconfigure(config: pytest.Config) -> None:
    controller = config.stash.get(_CONTROLLER_KEY, None)
    if controller is not None:
        controller.close()


def pytest_collect_directory(path: Path, parent: pytest.Collector):
    if _active(parent.config) and (path / "suite.yaml").is_file():
        return SuiteDirectory.from_parent(parent, path=path)
    return None


def pytest_collection_finish(session: pytest.Session) -> None:
    if not _active(session.config):
        return
    qs = session.config.stash[SESSION_KEY]
    qs.collected = [item.nodeid for item in session.items]
    wanted = [n for item in session.items
              for n in (getattr(item, "precision", None), getattr(getattr(item, "slo", None), "reference", None))]
    qs.needed = tuple(n for n in dict.fromkeys(wanted) if n in qs.options.precisions)
    unknown = sorted({s.suite for s in qs.options.slos if s.suite} - set(qs.suites))
    if unknown and qs.suites:
        raise pytest.UsageError(
            f"--qeval-slo scoped to suite(s) {', '.join(unknown)}, but the collected suites are "
            f"{', '.join(qs.suites)}. Fix the SUITE: prefix (it is the suite's name from suite.yaml)."
        )


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    qs = session.config.stash.get(SESSION_KEY, None)
    if qs is None:
        return
    qs.close()
    from pytest_qeval.distributed import WORKER_INPUT, worker_input, worker_result

    if worker_input(session.config) is not None:
        # An xdist worker reports to the controller, which alone writes the run's reports.
        session.config.workeroutput[WORKER_INPUT] = worker_result(session.config, qs)  # type: ignore[attr-defined]
        return
    notes: list[str] = []
    controller = session.config.stash.get(_CONTROLLER_KEY, None)
    try:
        from pytest_qeval.reports import write_session_reports

        if controller is None:
            record = qs.record()
        else:
            record, notes = controller.finish()
        session.config.stash[_RECORD_KEY] = record
        notes += write_session_reports(qs, record)[1]
    except Exception as exc:  # noqa: BLE001 - the verdicts stand even if a report cannot be written
        notes = [f"qeval: could not write the report: {type(exc).__name__}: {exc}"]
    session.config.stash[_NOTES_KEY] = notes


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    qs = config.stash.get(SESSION_KEY, None)
    if qs is None or not qs.verdicts or qs.shared is not None:
        return  # nothing to show, or an xdist worker (the controller shows the whole run)
    from pytest_qeval.messages import results_table, summary_table

    record = config.stash.get(_RECORD_KEY, None)
    if record is not None:
        terminalreporter.section("qeval: results (each suite's primary metric first)")
        for line in results_table(record):
            terminalreporter.write_line(line)
    terminalreporter.section("qeval: SLO verdicts")
    for line in summary_table(qs.verdicts):
        terminalreporter.write_line(line)
    if qs.cached:
        terminalreporter.write_line(
            f"{len(qs.cached)} cell(s) reused from the cache (nothing that matters changed); "
            "--qeval-no-cache re-measures them."
        )
    for note in config.stash.get(_NOTES_KEY, []):
        terminalreporter.write_line(note)
