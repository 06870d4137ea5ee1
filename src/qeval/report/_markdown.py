"""summary.md: readable in a terminal and as a GitHub Actions step summary."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qeval.files import atomic_write_text
from qeval.report._background import render_background
from qeval.report._nodes import render_nodes
from qeval.report._calibration import render_sensitivity
from qeval.report._decision import decide_run, render_decision_markdown
from qeval.report._servers import render_servers
from qeval.report._json import RESULTS_FILE, SAMPLES_FILE, jsonable
from qeval.report._table import COLUMNS, MISSING, fmt_percentile, metric_legend, ordered_cells, table_rows
from qeval.results import ModelCard, RunRecord, to_dict

SUMMARY_FILE = "summary.md"
PLOT_FILES = ("accuracy_vs_latency.png", "accuracy_vs_weights.png")

_FULL_PRECISION = re.compile(r"\b(fp32|float32|f32|fp16|float16|f16|bf16|bfloat16|full)\b", re.IGNORECASE)
_BITS = (
    re.compile(r"(\d+)\s*-?\s*bits?\b", re.IGNORECASE),  # "4-bit", "8 bit"
    re.compile(r"\bq(\d)_", re.IGNORECASE),  # GGUF "Q4_1", "Q8_0"
    re.compile(r"\b(?:int|nf|fp|uint)(\d)\b", re.IGNORECASE),  # "int4", "nf4", "fp8"
)


def source_bits(source_precision: str) -> int | None:
    """Bit width of already-quantized source weights (``None`` when full precision or unknown)."""
    for pattern in _BITS:
        match = pattern.search(source_precision)
        if match:
            bits = int(match.group(1))
            return bits if bits < 16 else None
    return None


def source_precision_note(card: ModelCard) -> str:
    """A plain sentence about the precision the weights were shipped at."""
    source = card.source_precision.strip() or "unknown"
    bits = source_bits(source)
    if bits is not None:
        return (
            f"**Source precision: {source}.** The weights were already {bits}-bit before qeval "
            f"quantized anything, so every precision here is measured against an already-quantized "
            f"model: {bits}-bit results (and anything wider) may look falsely lossless. "
            f"Confirm a 'no loss' verdict on a model shipped in full precision."
        )
    if _FULL_PRECISION.search(source):
        return f"**Source precision: {source}** (full precision weights as shipped)."
    return (
        f"**Source precision: {source}.** If these weights were already quantized, precisions at or "
        f"above that bit width may look falsely lossless."
    )


def _md(text: Any) -> str:
    """A value safe inside a markdown table cell."""
    s = MISSING if text is None else str(text)
    return s.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in rows]
    return lines


_STATUS_WIDTH = 60


def _short_status(cells: tuple[str, ...]) -> tuple[str, ...]:
    status = cells[2]
    if len(status) > _STATUS_WIDTH:
        status = status[: _STATUS_WIDTH - 1].rstrip() + "…"
    return (*cells[:2], status, *cells[3:])


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested mapping → ``[("torch.threads", "2"), ...]`` (lists as compact JSON)."""
    out: list[tuple[str, str]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out += flatten(value, prefix=name + ".")
        elif isinstance(value, (list, tuple, Mapping)):
            out.append((name, json.dumps(jsonable(value), ensure_ascii=False)))
        else:
            out.append((name, MISSING if value is None else str(value)))
    return out


def _fmt_params(n: int | None) -> str:
    if n is None:
        return MISSING
    return f"{n / 1e6:,.1f} M ({n:,})" if n >= 1e6 else f"{n:,}"


def _mb(n: Any) -> str:
    return MISSING if n is None else f"{n / 1e6:,.1f}"


def _compact(applied: dict[str, Any]) -> dict[str, Any]:
    """The fields that say something (no ``None``, no empty collections); ``details`` inlined."""
    details = applied.pop("details", None) or {}
    return {k: v for k, v in {**applied, **details}.items() if v is not None and v != {} and v != [] and v != ()}


def _quantization_cost(record: RunRecord) -> list[str]:
    """Per precision: load and quantize time, peak memory while quantizing, calibration."""
    rows, seen = [], set()
    for cell in ordered_cells(record):
        applied = cell.precision_config
        if cell.precision in seen or applied.quantize_seconds is None:
            continue
        seen.add(cell.precision)
        cal = applied.calibration
        cal_text = (
            f"{cal.name} · {cal.samples} samples · seed {cal.seed} · `{cal.sample_hash[:12]}`" if cal else MISSING
        )
        kind = applied.quantize_peak_kind or ""
        rows.append((
            f"`{cell.precision}`",
            MISSING if cell.load_s is None else f"{cell.load_s:.1f}",
            MISSING if cell.quantize_s is None else f"{cell.quantize_s:.1f}",
            f"{_mb(applied.quantize_peak_bytes)} {'cuda' if kind.startswith('cuda') else 'rss'}",
            cal_text,
            applied.cache or MISSING,
        ))
    if not rows:
        return []
    lines = ["## Quantization cost", ""]
    lines += _table(("target", "load s", "quantize s", "peak MB while quantizing", "calibration", "cache"), rows)
    lines += ["", "`quantize s` includes calibration and, for GPTQ, writing and reloading the checkpoint; "
              "a cache hit loads a stored checkpoint instead.", ""]
    return lines


ENDPOINT_COLUMNS = ("target", "suite", "output tokens from", "client overhead p50 ms / request", "p95",
                    "requests failed for good", "cases retried")
ENDPOINT_NOTE = ("TTFT is the first stream chunk that carries generated text (role-only and empty chunks do not "
                 "count); ITL the gaps between content chunks; output tokens from the server's `usage` where it sent "
                 "one. The client overhead is the time qeval spent between bytes arriving and reading on: every "
                 "endpoint latency above includes it, the network and the server's queue.")


def endpoint_rows(record: RunRecord) -> list[tuple[str, ...]]:
    """Per endpoint cell (:data:`ENDPOINT_COLUMNS`): where token counts came from, what the client itself
    added, what failed. Plain text; the markdown escapes it, the page autoescapes it."""
    rows: list[tuple[str, ...]] = []
    for cell in ordered_cells(record):
        if not cell.precision_config.remote or cell.status != "ok":
            continue
        lat = cell.latency
        retried = sum(1 for c in cell.cases if c.attempts > 1)
        errors = sum(1 for c in cell.cases if c.error is not None)
        overhead = lat.client_overhead_ms if lat is not None else None
        source = lat.token_source if lat is not None else MISSING
        rows.append((
            cell.precision, cell.suite,
            source + (" (approximate)" if "chunks" in source else ""),
            fmt_percentile(overhead, "p50") if overhead else MISSING,
            fmt_percentile(overhead, "p95") if overhead else MISSING,
            f"{errors} of {len(cell.cases)}" + (f" (timed: {lat.errors})" if lat is not None and lat.errors else ""),
            str(retried),
        ))
    return rows


def _endpoint_measurement(record: RunRecord) -> list[str]:
    rows = endpoint_rows(record)
    if not rows:
        return []
    lines = ["## Endpoint measurement", ""]
    lines += _table(ENDPOINT_COLUMNS, [(f"`{_md(r[0])}`", *r[1:]) for r in rows])
    return lines + ["", ENDPOINT_NOTE, ""]


def _targets(record: RunRecord) -> list[str]:
    """What each target name stood for, when the run is more than one model's precisions."""
    if not record.targets or all(t.kind == "model" and t.spec.split("@")[0] == record.model.spec for t in record.targets):
        return []
    rows = []
    for t in record.targets:
        ident = t.identity
        version = (ident.version if ident else None) or {}
        server = ", ".join(str(x) for x in (ident.server_header if ident else None, version.get("version")) if x)
        rows.append((f"`{_md(t.name)}`", _md(t.kind), f"`{_md(t.spec)}`", _md(t.card.name), _md(t.revision or MISSING),
                     _md(server or MISSING)))
    lines = ["## Targets", ""]
    lines += _table(("target", "kind", "spec", "model", "revision", "server"), rows)
    if any(t.kind == "openai" for t in record.targets):
        lines += ["", "Endpoint targets: weights and peak memory are not measured (the server's memory is not the "
                  "client's); latency includes the network and is comparable only from the same client host to the "
                  "same endpoint identity."]
    if any(t.kind in ("vllm", "llamacpp") for t in record.targets):
        lines += ["", "Managed targets (vllm:, llamacpp:): servers qeval started and stopped; their memory is the "
                  "checkpoint's weight bytes and the server process group's peak RSS (see Servers qeval started)."]
    return lines + [""]


def render_markdown(record: RunRecord) -> str:
    """The whole summary.md text."""
    card = record.model
    lines: list[str] = [f"# qeval run `{record.run_id}`", ""]
    lines += [f"Created {record.created_at} · schema version {record.schema_version}", ""]
    lines += render_decision_markdown(decide_run(record))

    lines += ["## Model", ""]
    lines += _table(
        ("field", "value"),
        [
            ("spec", f"`{card.spec}`"),
            ("name", card.name),
            ("source precision", card.source_precision),
            ("parameters", _fmt_params(card.parameters)),
            ("architecture", card.architecture or MISSING),
            ("path", f"`{card.path}`" if card.path else MISSING),
        ],
    )
    lines += ["", "> " + source_precision_note(card)]
    if card.notes.strip():
        lines += ["", card.notes.strip()]
    lines.append("")

    lines += _targets(record)

    lines += ["## Results", ""]
    rows = table_rows(record)
    if rows:
        # full reasons are listed under the table; keep the table itself narrow
        lines += _table(COLUMNS, [_short_status(row.cells()) for row in rows])
        lines += ["", *(f"- {_md(line)}" for line in metric_legend(record))]
    else:
        lines.append("No cells were run.")
    lines.append("")
    not_ok = [r for r in rows if not r.ok]
    if not_ok:
        lines += [f"{len(not_ok)} of {len(rows)} cells did not produce results:", ""]
        lines += [f"- **{_md(r.precision)} × {_md(r.suite)}** — {_md(r.status)}" for r in not_ok]
        lines.append("")

    lines += _endpoint_measurement(record)
    lines += render_servers(record, _table)
    lines += render_background(record)
    lines += render_nodes(record, _table)
    lines += _quantization_cost(record)
    lines += render_sensitivity(record)

    configs: dict[str, dict[str, Any]] = {}
    for cell in ordered_cells(record):
        applied = _compact(to_dict(cell.precision_config))
        if applied and cell.precision not in configs:
            configs[cell.precision] = applied
    if configs:
        lines += ["## What each target applied", ""]
        lines += _table(
            ("target", "config"),
            [(f"`{p}`", f"`{json.dumps(jsonable(c), sort_keys=True)}`") for p, c in configs.items()],
        )
        lines.append("")

    lines += ["## Environment", ""]
    env_rows = flatten(to_dict(record.environment))
    lines += _table(("key", "value"), env_rows) if env_rows else ["No environment fingerprint recorded."]
    lines.append("")
    settings_rows = flatten(to_dict(record.settings))
    if settings_rows:
        lines += ["## Settings", ""]
        lines += _table(("key", "value"), settings_rows)
        lines.append("")

    lines += [
        "## How to read this",
        "",
        "- **primary metric** leads each row: the suite's `primary_metric` (suite.yaml; `f1` for the "
        "extraction suites), named in the cell, with its 95% interval and `n` the number of cases. The lines "
        "under the table say what each suite's primary metric and pass rate are.",
        "- **pass rate** (`accuracy` in results.json) is the share of cases the scorer passes as a whole "
        "(for an extraction suite: every entity or field exactly right, so it is far below the F1); "
        "`[lo, hi]` is its Wilson 95% interval. `(primary)`: the suite's primary metric is the pass rate. "
        "Two targets whose intervals overlap may still differ, and may not: use the paired comparison "
        "(same cases) before calling a drop real.",
        "- **other metrics** carry a 95% interval (a percentile bootstrap over cases for F1-like scores, "
        "Wilson for rates); `n` is shown only when it differs from the cell's.",
        "- **latency** comes from a separate timed pass: batch 1, greedy, after warm-up requests that are "
        "excluded. `(n=…)` is the number of timed requests (TTFT) or of requests with ≥ 2 output tokens "
        "(TPOT). Percentiles use linear interpolation; a p95 from n < 20 is close to the maximum.",
        "- **TTFT**: request start (tokenization excluded) to first generated token. **TPOT**: "
        "(e2e − TTFT) / (output tokens − 1) per request. **output tok/s**: output tokens of the timed "
        "pass / its wall time.",
        "- **weights MB**: real storage of every tensor the model holds (packed where packed), "
        "MB = 10^6 bytes. **peak mem MB**: `rss` = peak resident memory of the process on CPU, "
        "`cuda` = peak CUDA allocated memory.",
        "- Timings on shared machines are noisy: compare targets from the same run, not across runs.",
        f"- `{MISSING}` means not measured; skipped and failed cells are listed with their reason, not hidden.",
        "",
        f"Files: `{RESULTS_FILE}` (all numbers), `{SAMPLES_FILE}` (every completion and its score), "
        + ", ".join(f"`{p}`" for p in PLOT_FILES)
        + ".",
        "",
    ]
    return "\n".join(lines)


def write_summary(record: RunRecord, path: str | Path) -> Path:
    """Write ``summary.md`` for ``record`` to ``path`` atomically; return the path."""
    return atomic_write_text(path, render_markdown(record))
