"""The accuracy pass: batched greedy generation over a suite, then scoring."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from qeval.config import GenerationSettings
from qeval.models import TextModel
from qeval.results import CaseResult, Score


@dataclass(frozen=True)
class AccuracyPass:
    cases: tuple[CaseResult, ...]
    wall_s: float
    output_tokens: int


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """Text before the earliest stop string (all of it when none occurs)."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]


def build_prompts(model: TextModel, suite) -> list[str]:
    return [
        model.format_prompt(suite.render(case), chat_template=suite.chat_template, system_prompt=suite.system_prompt)
        for case in suite.cases
    ]


def _safe_score(scorer, completion: str, expected) -> Score:
    # A scorer bug must cost one case, not the sweep; the reason says so.
    try:
        return scorer.score(completion, expected)
    except Exception as exc:  # noqa: BLE001
        return Score(value=0.0, passed=False, reason=f"scorer error: {type(exc).__name__}: {exc}")


CHUNK_BATCHES = 4
"""Batches' worth of cases per ``generate`` call for a slot-refilling model: more waiting
prompts keep its slots full longer (the batch drains only at a chunk's end), fewer make
a journaled (resumable) unit smaller."""


def chunk_size(model: TextModel, settings: GenerationSettings) -> int:
    """Cases per ``model.generate`` call (and per journal unit) of the accuracy pass."""
    refills = getattr(model, "refills_slots", False)
    return settings.batch_size * (CHUNK_BATCHES if refills else 1)


def accuracy_pass(
    model: TextModel, suite, settings: GenerationSettings, progress=None, *, done=None, on_batch=None,
    should_stop=None,
) -> AccuracyPass:
    """Generate every case of ``suite`` greedily and score it, in chunks of cases.

    A chunk is ``settings.batch_size`` cases, or ``batch_size * CHUNK_BATCHES`` for a
    model whose ``generate`` refills the slots of finished rows (``refills_slots``,
    :mod:`qeval.models._engine`): it needs more waiting prompts than slots to keep its
    batch full. Chunks follow the suite's case order.

    Resuming (:mod:`qeval.journal`): ``done`` maps a chunk index to the
    ``(cases, output_tokens, wall_s)`` an earlier run journaled for it; those chunks
    are reused, not generated (a journaled chunk whose case ids differ is generated
    again). Chunk boundaries depend only on the batch size and the model kind, so the
    chunks generated now are exactly those a clean run generates.
    ``on_batch(index, cases, output_tokens, wall_s)`` is called after each newly
    finished chunk (before ``should_stop()``, which is called next and may raise to
    stop the pass between chunks, e.g. on Ctrl-C).
    """
    done = done or {}
    prompts = build_prompts(model, suite)
    check = getattr(model, "check_cases", None)  # optional: a model that serves recorded cases (replay)
    if check is not None:
        check(suite.name, [c.id for c in suite.cases])
    scorer = suite.scorer()
    results: list[CaseResult] = []
    wall_s = 0.0
    output_tokens = 0
    size = chunk_size(model, settings)
    for index, b in enumerate(range(0, len(prompts), size)):
        cases = suite.cases[b : b + size]
        reused = done.get(index)
        if reused is not None and [c.case_id for c in reused[0]] == [c.id for c in cases]:
            batch_results, tokens, took = reused
            results.extend(batch_results)
            output_tokens += tokens
            wall_s += took
            if progress is not None:
                progress(len(cases))
            continue
        start = time.perf_counter()
        gens = model.generate(prompts[b : b + size], settings)
        took = time.perf_counter() - start
        batch_results = []
        for i, (case, gen) in enumerate(zip(cases, gens, strict=True)):
            completion = cut_at_stop(gen.text, settings.stop)
            score = _safe_score(scorer, completion, case.expected)
            batch_results.append(
                CaseResult(
                    case_id=case.id,
                    prompt=prompts[b + i],
                    completion=completion,
                    expected=case.expected,
                    score=float(score.value),
                    passed=bool(score.passed),
                    reason=score.reason,
                    output_tokens=gen.output_tokens,
                    tags=dict(case.tags),
                    details=dict(score.details),
                )
            )
        tokens = sum(g.output_tokens for g in gens)
        results.extend(batch_results)
        output_tokens += tokens
        wall_s += took
        if on_batch is not None:
            on_batch(index, tuple(batch_results), tokens, took)
        if progress is not None:
            progress(len(cases))
        if should_stop is not None:
            should_stop()
    return AccuracyPass(cases=tuple(results), wall_s=wall_s, output_tokens=output_tokens)


def effective_settings(suite, batch_size: int | None) -> GenerationSettings:
    """The suite's generation settings, with the sweep's batch size when one is given."""
    return suite.generation if batch_size is None else replace(suite.generation, batch_size=batch_size)
