"""Rewrite every shipped calibration set from its default seed: ``python -m calibration._generators``."""

from __future__ import annotations

import importlib

from calibration._generators import SETS
from calibration._generators._common import stats_line


def main() -> None:
    for name in SETS:
        module = importlib.import_module(f"calibration._generators.{name}")
        path = module.generate()
        print(f"wrote {path}: {stats_line(module.texts())}")


if __name__ == "__main__":
    main()
