"""Reports: results.json, samples.jsonl, summary.md, PNG plots, the terminal table, and run comparisons."""

from qeval.files import atomic_open, atomic_write_bytes, atomic_write_text
from qeval.report._comparison import (
    REGRESSION_JSON,
    REGRESSION_MD,
    comparison_dict,
    render_comparison_markdown,
    render_comparison_text,
    write_comparison,
)
from qeval.report._json import RESULTS_FILE, SAMPLES_FILE, read_results, results_dict, write_results
from qeval.report._markdown import SUMMARY_FILE, render_markdown, write_summary
from qeval.report._record import cell_from_dict, read_record, record_dict, record_from_dict, write_record
from qeval.report._plots import LATENCY_PLOT, WEIGHTS_PLOT, plot_accuracy_vs_latency, plot_accuracy_vs_weights
from qeval.report._samples import read_samples, write_samples
from qeval.report._table import render_console_table, table_rows
from qeval.report._write import ReportWarning, write_report

__all__ = [
    "LATENCY_PLOT",
    "REGRESSION_JSON",
    "REGRESSION_MD",
    "ReportWarning",
    "RESULTS_FILE",
    "SAMPLES_FILE",
    "SUMMARY_FILE",
    "WEIGHTS_PLOT",
    "atomic_open",
    "cell_from_dict",
    "comparison_dict",
    "read_record",
    "record_dict",
    "record_from_dict",
    "write_comparison",
    "write_record",
    "atomic_write_bytes",
    "atomic_write_text",
    "plot_accuracy_vs_latency",
    "plot_accuracy_vs_weights",
    "read_results",
    "read_samples",
    "render_comparison_markdown",
    "render_comparison_text",
    "render_console_table",
    "render_markdown",
    "results_dict",
    "table_rows",
    "write_report",
    "write_results",
    "write_samples",
    "write_summary",
]
