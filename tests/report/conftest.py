"""Synthetic run records for the report tests."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from qeval.applied import AppliedPrecision
from qeval.results import (
    CaseResult,
    CellResult,
    Environment,
    LatencyStats,
    MemoryStats,
    MetricValue,
    ModelCard,
    Percentiles,
    RunRecord,
    RunSettings,
    TorchInfo,
)

SOURCE_PRECISION = "Q4_1 (GGUF, 4-bit, group 32)"


def pct(p50: float | None, p95: float | None = None, p99: float | None = None, n: int = 8) -> Percentiles:
    return Percentiles(p50=p50, p95=p95 if p95 is not None else p50, p99=p99 if p99 is not None else p50, n=n)


def latency(ttft_p95: float | None = 120.0, tpot: float | None = 30.0, tokens_per_s: float | None = 33.3) -> LatencyStats:
    return LatencyStats(
        ttft_ms=pct(ttft_p95 * 0.8 if ttft_p95 is not None else None, ttft_p95),
        tpot_ms=pct(tpot, n=7),
        itl_ms=pct(tpot, n=56),
        e2e_ms=pct(500.0),
        tokenize_ms=pct(0.4),
        output_tokens_per_s=tokens_per_s,
        requests=8,
        warmup_requests=2,
        output_tokens=64,
    )


def cases(n: int, passed_every: int = 2) -> tuple[CaseResult, ...]:
    return tuple(
        CaseResult(
            case_id=f"c{i}",
            prompt=f"What is {i} + {i}?",
            completion=f"{2 * i}",
            expected=2 * i,
            score=1.0 if i % passed_every == 0 else 0.0,
            passed=i % passed_every == 0,
            reason=None if i % passed_every == 0 else "wrong number",
            output_tokens=3,
            tags={"topic": "arith"},
            details={"parsed": 2 * i},
        )
        for i in range(n)
    )


def ok_cell(precision: str, suite: str, n: int = 4, accuracy: float | None = 0.5, **kw: Any) -> CellResult:
    fields: dict[str, Any] = dict(
        precision=precision,
        suite=suite,
        status="ok",
        reason=None,
        n=n,
        accuracy=accuracy,
        accuracy_ci=(0.15, 0.85) if accuracy is not None else None,
        metrics={"f1": MetricValue(value=0.61, ci=(0.4, 0.8), n=n)},
        latency=latency(),
        memory=MemoryStats(weights_bytes=270_000_000, peak_bytes=900_000_000, peak_kind="cpu_rss"),
        load_s=2.0,
        quantize_s=0.5,
        precision_config=AppliedPrecision(library="torchao", scheme={"name": "int8_weight_only"}),
        cases=cases(n),
    )
    fields.update(kw)
    return CellResult(**fields)


def not_run_cell(precision: str, suite: str, status: str, reason: str) -> CellResult:
    return CellResult(precision=precision, suite=suite, status=status, reason=reason, n=0, accuracy=None, accuracy_ci=None)


def make_record(cells: tuple[CellResult, ...] | None = None, run_id: str = "run-001", **kw: Any) -> RunRecord:
    """fp32/int8 ok on two suites, nf4 skipped on one and failed on the other."""
    if cells is None:
        cells = (
            ok_cell("fp32", "arith", accuracy=0.75),
            ok_cell("fp32", "extract", accuracy=0.5),
            ok_cell(
                "int8", "arith", accuracy=0.5,
                latency=latency(ttft_p95=90.0), memory=MemoryStats(135_000_000, 700_000_000, "cpu_rss"),
            ),
            ok_cell("int8", "extract", accuracy=0.25, metrics={}),
            not_run_cell("nf4", "arith", "skipped", "bitsandbytes not installed: pip install 'qeval[bnb]'"),
            not_run_cell("nf4", "extract", "failed", "RuntimeError: group size 128 does not divide 576"),
        )
    fields: dict[str, Any] = dict(
        run_id=run_id,
        created_at="2025-01-01T12:00:00Z",
        model=ModelCard(
            spec="builtin:smollm2",
            name="SmolLM2-135M-Instruct",
            source_precision=SOURCE_PRECISION,
            parameters=134_515_008,
            architecture="LlamaForCausalLM",
            path="/cache/smollm2",
        ),
        environment=Environment(device="cpu", python="3.11.7", packages={"torch": "2.13.0"},
                                torch=TorchInfo(available=True, threads=2)),
        settings=RunSettings(limit=4, latency_samples=8, warmup_requests=2),
        cells=cells,
    )
    fields.update(kw)
    return RunRecord(**fields)


@pytest.fixture(scope="session")
def factory() -> SimpleNamespace:
    """The builders above, for tests that need their own cells (session-scoped: safe under hypothesis)."""
    return SimpleNamespace(
        make_record=make_record, ok_cell=ok_cell, not_run_cell=not_run_cell, latency=latency, pct=pct, cases=cases,
        SOURCE_PRECISION=SOURCE_PRECISION,
    )


@pytest.fixture
def record() -> RunRecord:
    return make_record()
