"""The one interface every target is run through, and the typed record of what it is.

A :class:`Target` is provisioned once (a model loaded and quantized, or an endpoint
identified) into a :class:`qeval.models.LoadedModel` whose text model the accuracy and
timed passes drive; :func:`qeval.runner.run_target` is the one entry point that does it,
for the sweep, ``qeval perf`` and the pytest plugin alike.
"""

from __future__ import annotations

from typing import Any, Protocol

from qeval.results import ModelCard
from qeval.targets._spec import TargetSpec


class Target(Protocol):
    """A named target ready to be provisioned on a device."""

    spec: TargetSpec
    card: ModelCard
    description: str

    def unavailable_reason(self, device: str) -> str | None:
        """Why this target cannot run here (a ``skipped`` cell), or ``None``."""
        ...

    def provision(self, device: str) -> Any:
        """Load / quantize / connect: a :class:`qeval.models.LoadedModel`."""
        ...
