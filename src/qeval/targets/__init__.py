"""Targets: what a run evaluates, each under a name (``--target NAME=SPEC``).

A model qeval loads and quantizes itself (:class:`InProcessTarget`) or an OpenAI-compatible
endpoint someone else serves (:class:`EndpointTarget`); both are run through
:func:`qeval.runner.run_target`.
"""

from __future__ import annotations

from qeval.targets._base import Target
from qeval.targets._build import build_targets, precision_of, token_counter
from qeval.targets._endpoint import EndpointModel, EndpointTarget, chat_text
from qeval.targets._inprocess import InProcessTarget
from qeval.targets._spec import (
    OPENAI_PREFIX,
    TargetSpec,
    check_name,
    parse_assignments,
    parse_target,
    split_engine_args,
    targets_from_precisions,
    with_options,
)

__all__ = [
    "OPENAI_PREFIX",
    "EndpointModel",
    "EndpointTarget",
    "InProcessTarget",
    "Target",
    "TargetSpec",
    "build_targets",
    "check_name",
    "chat_text",
    "parse_assignments",
    "parse_target",
    "precision_of",
    "split_engine_args",
    "targets_from_precisions",
    "token_counter",
    "with_options",
]
