"""A model qeval loads itself: provisioning is load + quantize (+ calibration)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qeval.results import ModelCard
from qeval.targets._spec import TargetSpec


@dataclass
class InProcessTarget:
    """``NAME=MODEL@PRECISION``: ``source`` (a :class:`qeval.models.ModelSource`) at ``precision``
    (a :class:`qeval.quantize.Precision`), with its calibration sample when it needs one."""

    spec: TargetSpec
    source: Any
    precision: Any
    calibration: Any = None

    @property
    def card(self) -> ModelCard:
        # read each time: a source learns its parameter count on first load
        card: ModelCard = self.source.card
        return card

    @property
    def description(self) -> str:
        return str(self.precision.description)

    def unavailable_reason(self, device: str) -> str | None:
        reason: str | None = self.precision.unavailable_reason(device)
        return reason

    def provision(self, device: str) -> Any:
        if self.precision.needs_calibration:
            return self.source.load(self.precision.name, device, self.calibration)
        return self.source.load(self.precision.name, device)
