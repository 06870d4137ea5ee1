"""Seeded generators of the shipped calibration sets: one module per set (see each set's README).

``python -m calibration._generators`` rewrites all of them; ``python -m
calibration._generators.<name>`` rewrites one. Run from the repository root.
"""

SETS = ("generic", "medical", "code", "arithmetic")
