"""Reading stored runs of schema 1, whose ``environment`` and ``settings`` were free-form dicts.

:func:`upgrade_v1` gives such a file schema 2's shape before it is validated into a
:class:`~qeval.results.RunRecord`: keys that name a field of
:class:`~qeval.results.Environment` / :class:`~qeval.results.RunSettings` are kept
(their values are type-checked like a schema-2 file's), keys that name none are
dropped, and a missing one takes the field's default (``None``, empty, ``False``).
The keys whose shape changed are converted: ``calibration_variants[].set`` is now
``calibration_set``; ``cached_cells`` (``{"suite/precision": run_id}``) is now a
list of :class:`~qeval.results.CachedCell`; each cell's ``precision_config`` (a flat dict)
becomes an :class:`~qeval.applied.AppliedPrecision` (endpoint fields under ``endpoint``,
method-specific keys under ``details``); a target's ``identity`` (``{}`` for an in-process
target) becomes an :class:`~qeval.applied.EndpointIdentity` or ``None``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from qeval.applied import AppliedPrecision, EndpointIdentity
from qeval.results import SCHEMA_VERSION, Environment, RunSettings, to_dict

READS_V1 = 1
"""The older schema version the readers still accept."""


def upgrade_v1(data: Mapping[str, Any]) -> dict[str, Any]:
    """A schema-1 results or record dict in schema 2's shape (``data`` is not changed)."""
    return {
        **data,
        "schema_version": SCHEMA_VERSION,
        "environment": _known_fields(Environment, data.get("environment", {})),
        "settings": _settings(data.get("settings", {})),
        "cells": [upgrade_cell_v1(c) for c in data["cells"]] if isinstance(data.get("cells"), list) else data.get("cells"),
        "targets": [_target(t) for t in data["targets"]] if isinstance(data.get("targets"), list) else data.get("targets", []),
    }


def upgrade_cell_v1(cell: Any) -> Any:
    """A schema-1 cell's ``precision_config`` in schema 2's shape (also what the plugin's cell
    cache reads: a cached cell may predate schema 2)."""
    if not isinstance(cell, Mapping) or not isinstance(cell.get("precision_config"), Mapping):
        return cell
    return {**cell, "precision_config": to_dict(AppliedPrecision.from_json(cell["precision_config"]))}


def _target(target: Any) -> Any:
    if not isinstance(target, Mapping):
        return target
    identity = EndpointIdentity.from_json(target.get("identity"))
    return {**target, "identity": to_dict(identity) if identity is not None else None}


def _known_fields(record_type: type, value: Any) -> Any:
    """``value``'s entries that name a field of ``record_type`` (any other value is left to validation,
    which names the key and what it should be)."""
    if not isinstance(value, Mapping):
        return value
    names = {f.name for f in dataclasses.fields(record_type)}
    return {key: item for key, item in value.items() if key in names}


def _settings(value: Any) -> Any:
    settings = _known_fields(RunSettings, value)
    if not isinstance(settings, dict):
        return settings
    variants = settings.get("calibration_variants")
    if isinstance(variants, list):
        settings["calibration_variants"] = [_variant(v) for v in variants]
    cached = settings.get("cached_cells")
    if isinstance(cached, Mapping):
        settings["cached_cells"] = [_cached_cell(key, run_id) for key, run_id in cached.items()]
    return settings


def _variant(value: Any) -> Any:
    if not isinstance(value, Mapping) or "set" not in value:
        return value
    renamed = {key: item for key, item in value.items() if key != "set"}
    return {"calibration_set": value["set"], **renamed}


def _cached_cell(key: Any, run_id: Any) -> dict[str, Any]:
    # precision (target) names cannot hold "/", suite names can: split at the last one
    suite, _, precision = str(key).rpartition("/")
    return {"suite": suite, "precision": precision, "run_id": run_id}
