"""pytest-qeval: ``pytest --qeval suites/medical`` turns a suite's accuracy and latency SLOs
into pytest items, one per (precision × SLO), decided on confidence intervals.

The hooks live in :mod:`pytest_qeval.plugin` (the ``pytest11`` entry point ``qeval``).
This package imports neither torch nor the model code until ``--qeval`` asks for an evaluation.
"""
