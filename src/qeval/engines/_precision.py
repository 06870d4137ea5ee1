"""A precision as an engine serves it: the name a SPEC gives after ``@`` and whether making its
checkpoint needs calibration text (the sweep loads the sets and seeds it varies, as for
in-process precisions)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnginePrecision:
    name: str
    description: str
    needs_calibration: bool = False


__all__ = ["EnginePrecision"]
