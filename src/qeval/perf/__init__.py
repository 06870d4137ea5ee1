"""``qeval perf``: load profiles per precision (latency percentiles, throughput, memory),
goodput under SLOs and serving cost. See :mod:`qeval.perf._schema` for perf.json."""

from qeval.perf._config import PerfConfig, parse_batch_sizes
from qeval.perf._cost import (
    break_even_tokens_per_hour,
    capacity_tokens_per_hour,
    cost_at,
    costed_load,
    usd_per_1m_output_tokens,
)
from qeval.perf._goodput import goodput, parse_perf_slos, pick_goodput, point_verdicts
from qeval.perf._markdown import render_perf_markdown
from qeval.perf._plan import Block, abba_order
from qeval.perf._runner import is_out_of_memory, measure, run_perf
from qeval.perf._schema import (
    PERF_SCHEMA_VERSION,
    ColdStart,
    Cost,
    Distribution,
    Goodput,
    LoadPoint,
    PerfRecord,
    PrecisionPerf,
    Quantile,
    Ratio,
)
from qeval.perf._write import PERF_FILE, PERF_MARKDOWN, read_perf, write_perf

__all__ = [
    "PERF_FILE",
    "PERF_MARKDOWN",
    "PERF_SCHEMA_VERSION",
    "Block",
    "ColdStart",
    "Cost",
    "Distribution",
    "Goodput",
    "LoadPoint",
    "PerfConfig",
    "PerfRecord",
    "PrecisionPerf",
    "Quantile",
    "Ratio",
    "abba_order",
    "break_even_tokens_per_hour",
    "capacity_tokens_per_hour",
    "cost_at",
    "costed_load",
    "goodput",
    "is_out_of_memory",
    "measure",
    "parse_batch_sizes",
    "parse_perf_slos",
    "pick_goodput",
    "point_verdicts",
    "read_perf",
    "render_perf_markdown",
    "run_perf",
    "usd_per_1m_output_tokens",
    "write_perf",
]
