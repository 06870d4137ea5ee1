"""Which machine ran which cell, for runs spread over several (``--executor ray``).

Cells that carry a ``node`` fingerprint are grouped by what decides whether timings compare
(:func:`qeval.environment.compared_values`: device, CPU or GPU model, cores, torch threads,
packages, host). Latency from two groups is not comparable, as latency from two runs on two
environments is not; a ratio paired inside one task (ABBA, same node, same window) stands.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from qeval.environment import compared_values, fingerprint_differences
from qeval.results import CellResult, Environment, RunRecord


def node_groups(record: RunRecord) -> list[tuple[Environment, list[CellResult]]]:
    """Cells with a node fingerprint, grouped by comparable fingerprint, in first-seen order."""
    groups: dict[str, tuple[Environment, list[CellResult]]] = {}
    for cell in record.cells:
        if cell.node is None:
            continue
        key = repr(sorted(compared_values(cell.node).items()))
        groups.setdefault(key, (cell.node, []))[1].append(cell)
    return list(groups.values())


def node_numbers(record: RunRecord) -> dict[tuple[str, str], int]:
    """``{(precision, suite): node number}`` as the Nodes section numbers them (from 1); empty
    unless the run is spread over nodes whose timings do not compare."""
    groups = node_groups(record)
    if len(groups) < 2:
        return {}
    return {(c.precision, c.suite): number for number, (_, cells) in enumerate(groups, start=1) for c in cells}


def mixed_nodes(record: RunRecord) -> bool:
    """Whether the run's timed cells ran on machines whose timings do not compare."""
    return len(node_groups(record)) > 1


def render_nodes(record: RunRecord, table: Callable[[Sequence[str], Sequence[Sequence[str]]], list[str]]) -> list[str]:
    """summary.md's "Nodes" section (empty for a run in one process)."""
    groups = node_groups(record)
    if not groups:
        return []
    rows = []
    for number, (env, cells) in enumerate(groups, start=1):
        names = ", ".join(f"{c.precision} × {c.suite}" for c in cells)
        rows.append((str(number), env.host_id or "?", env.device or "?", env.device_name or "?",
                     str(env.cpu.usable_cores or "?"), str(env.torch.threads or "?"), names))
    lines = ["## Nodes", "", "Each cell ran as a Ray task; these are the machines as each task saw them.", ""]
    lines += table(("node", "host id", "device", "device name", "usable cores", "torch threads", "cells"), rows)
    if len(groups) > 1:
        first = groups[0][0]
        apart = "; ".join(f"node {i}: " + ", ".join(fingerprint_differences(first, env))
                          for i, (env, _) in enumerate(groups[1:], start=2))
        lines += ["", f"> **Latency is not comparable across these nodes** ({apart}). Compare a target's latency "
                  "only with cells of its own node; a ratio paired with the reference inside one task stands. "
                  "Pin targets to one node type (`--ray-resources`, a cluster of one node type) to compare them."]
    lines.append("")
    return lines
