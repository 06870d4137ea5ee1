"""Cells that ran on other machines (Ray nodes): the report groups them by node and says when
their latency does not compare; ``qeval compare`` judges such a cell by its nodes, not the drivers'
(no Ray needed: the records are built here)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from qeval.compare import compare_runs
from qeval.config import SweepConfig
from qeval.models import FakeSource
from qeval.report._markdown import render_markdown
from qeval.results import CpuInfo
from qeval.sweep import run_sweep
from tests.fakes import MINI, right_except_int4_on_odd


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    config = SweepConfig(model="fake", precisions=("fp32", "int4"), suites=(str(MINI),), device="cpu",
                         latency_samples=3, warmup_requests=0, out_dir=str(tmp_path_factory.mktemp("run")))
    return run_sweep(config, source=FakeSource(responder=right_except_int4_on_odd))[0]


def _on(record, *cpus):
    """``record`` with cell i run on a node whose CPU is ``cpus[i]``."""
    env = record.environment
    nodes = [replace(env, cpu=replace(env.cpu, model=cpu), host_id=f"host-{cpu}") for cpu in cpus]
    return replace(record, cells=tuple(replace(c, node=n) for c, n in zip(record.cells, nodes, strict=True)))


def _latency_rows(cell):
    return [m for m in cell.metrics if "ttft" in m.metric or "e2e" in m.metric]


def test_the_summary_groups_cells_by_node_and_warns_when_they_differ(record):
    one = render_markdown(_on(record, "EPYC", "EPYC"))
    assert "## Nodes" in one and "fp32 × mini, int4 × mini" in one and "not comparable" not in one
    two = render_markdown(_on(record, "EPYC", "Xeon"))
    assert "**Latency is not comparable across these nodes** (node 2: cpu.model: EPYC != Xeon" in two
    assert "## Nodes" not in render_markdown(record)  # a local run: its environment covers every cell


def test_compare_judges_a_cell_by_the_nodes_that_ran_it(record):
    other_driver = replace(record.environment, cpu=CpuInfo(model="laptop"), host_id="laptop")
    base = _on(record, "EPYC", "EPYC")
    same_nodes = replace(_on(record, "EPYC", "EPYC"), environment=other_driver)
    moved = _on(record, "EPYC", "Xeon")
    kept = compare_runs(base, same_nodes)
    assert all(_latency_rows(c) for c in kept.cells)  # drivers differ, the nodes that timed do not
    split = compare_runs(base, moved)
    fp32, int4 = split.cells
    assert _latency_rows(fp32) and not _latency_rows(int4)
    assert any("machines that ran this cell differ (cpu.model: EPYC != Xeon" in n for n in int4.notes)
    allowed = compare_runs(base, moved, allow_env_mismatch=True).cells[1]
    assert _latency_rows(allowed) and any("compared anyway" in n for n in allowed.notes)


def test_the_decision_does_not_rank_latency_across_nodes(record):
    from qeval.report._decision import decide_run

    assert not any("frontier" in n for n in decide_run(_on(record, "EPYC", "EPYC")).notes)
    mixed = decide_run(_on(record, "EPYC", "Xeon"))
    assert any("p95 latency is left out of the frontier" in n for n in mixed.notes)
    assert mixed.chosen == decide_run(record).chosen  # accuracy and memory still decide


def _pareto_texts(record):
    from qeval.report._html import _draw_pareto

    fig = _draw_pareto(record)
    return [t.get_text() for t in fig.axes[0].texts], fig.texts[0].get_text()


def test_the_pareto_plot_labels_cells_by_node_and_draws_no_frontier_across_nodes(record):
    labels, title = _pareto_texts(_on(record, "EPYC", "Xeon"))
    fp32, int4 = sorted(labels)
    assert fp32.startswith("fp32") and "[node 1]" in fp32 and int4.startswith("int4") and "[node 2]" in int4
    assert not any(" *" in t for t in labels)  # no frontier across nodes
    assert "do not compare" in title
    labels, title = _pareto_texts(_on(record, "EPYC", "EPYC"))
    assert not any("[node" in t for t in labels) and any(" *" in t for t in labels)
    assert "Pareto frontier" in title
