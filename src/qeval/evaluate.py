"""The accuracy pass: batched greedy generation over a suite, then scoring."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from qeval.generation import GenerationSettings
from qeval.models import TextModel
from qeval.models._base import Prompt, abilities_of, conversation
from qeval.results import CaseResult, Score


@dataclass(frozen=True)
class AccuracyPass:
    cases: tuple[CaseResult, ...]
    wall_s: float
    output_tokens: int
    prompts: tuple[Prompt, ...] = ()
    """The prepared prompt of each case, in case order (the timed pass sends the same ones)."""


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """Text before the earliest stop string (all of it when none occurs)."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]


def build_prompts(model: TextModel, suite) -> list[Prompt]:
    """Every case's messages (the suite's system prompt, then the rendered case), prepared by ``model``."""
    return [
        model.prepare(conversation(suite.render(case), suite.system_prompt), chat=suite.chat_template)
        for case in suite.cases
    ]


def _safe_score(scorer, completion: str, expected) -> Score:
    # A scorer bug must cost one case, not the sweep; the reason says so.
    try:
        return scorer.score(completion, expected)
    except Exception as exc:  # noqa: BLE001
        return Score(value=0.0, passed=False, reason=f"scorer error: {type(exc).__name__}: {exc}")


CHUNK_BATCHES = 4
"""Batches' worth of cases per journaled (resumable) chunk of the accuracy pass for a
slot-refilling model. It streams every chunk through one batch that never drains between
chunks, so the chunk size only sets how much work an interruption can lose."""


def chunk_size(model: TextModel, settings: GenerationSettings) -> int:
    """Cases per journal unit of the accuracy pass (and per ``generate`` call of a static model)."""
    refills = abilities_of(model).refills_slots
    return settings.batch_size * (CHUNK_BATCHES if refills else 1)


def accuracy_pass(
    model: TextModel, suite, settings: GenerationSettings, progress=None, *, done=None, on_batch=None,
    should_stop=None,
) -> AccuracyPass:
    """Generate every case of ``suite`` greedily and score it, in chunks of cases.

    A chunk is ``settings.batch_size`` cases, or ``batch_size * CHUNK_BATCHES`` for a
    model that refills the slots of finished rows (``abilities.refills_slots`` and
    ``generate_stream``, :mod:`qeval.models._engine`): every chunk still to do is handed
    to it at once, and a chunk is scored and journaled as soon as its last case ends,
    while the batch goes on decoding the next ones. A chunk's ``wall_s`` is the generation
    time since the previous chunk ended (scoring excluded), so the chunks' times add up.

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
    abilities = abilities_of(model)
    if abilities.checks_cases:  # a model that serves recorded cases (replay)
        cast(Any, model).check_cases(suite.name, [c.id for c in suite.cases])
    scorer = suite.scorer()
    size = chunk_size(model, settings)
    chunks = [(index, b, suite.cases[b : b + size]) for index, b in enumerate(range(0, len(prompts), size))]
    by_chunk: dict[int, tuple[tuple[CaseResult, ...], int, float]] = {}
    todo = []
    for index, b, cases in chunks:
        reused = done.get(index)
        if reused is not None and [c.case_id for c in reused[0]] == [c.id for c in cases]:
            by_chunk[index] = (tuple(reused[0]), reused[1], reused[2])
            if progress is not None:
                progress(len(cases))
        else:
            todo.append((index, b, cases))

    def finish(index: int, b: int, cases, gens, took: float) -> None:
        results = tuple(_case_result(case, prompts[b + i], gen, settings, scorer) for i, (case, gen) in
                        enumerate(zip(cases, gens, strict=True)))
        tokens = sum(g.output_tokens for g in gens)
        by_chunk[index] = (results, tokens, took)
        if on_batch is not None:
            on_batch(index, results, tokens, took)
        if progress is not None:
            progress(len(cases))
        if should_stop is not None:
            should_stop()

    stream = cast(Any, model).generate_stream if abilities.refills_slots else None  # the ability says it has one
    if stream is not None and todo:
        _stream_chunks(stream, todo, prompts, settings, size, finish)
    else:
        for index, b, cases in todo:
            start = time.perf_counter()
            gens = model.generate(prompts[b : b + len(cases)], settings)
            finish(index, b, cases, gens, time.perf_counter() - start)
    ordered = [by_chunk[index] for index, _, _ in chunks]
    return AccuracyPass(cases=tuple(r for rs, _, _ in ordered for r in rs),
                        wall_s=sum(s for _, _, s in ordered), output_tokens=sum(t for _, t, _ in ordered),
                        prompts=tuple(prompts))


def _stream_chunks(stream, todo, prompts, settings, size, finish) -> None:
    """All of ``todo``'s prompts through one ``generate_stream``; ``finish`` each chunk as it ends."""
    where: list[tuple[int, int]] = []  # stream position -> (chunk slot in todo, row in chunk)
    for slot, (_, b, cases) in enumerate(todo):
        where.extend((slot, row) for row in range(len(cases)))
    gens: list[list] = [[None] * len(cases) for _, _, cases in todo]
    left = [len(cases) for _, _, cases in todo]
    flat = [prompts[b + row] for _, b, cases in todo for row in range(len(cases))]
    took = 0.0
    it = iter(stream(flat, settings, group=size))
    while True:
        start = time.perf_counter()
        item = next(it, None)
        took += time.perf_counter() - start
        if item is None:
            break
        position, gen = item
        slot, row = where[position]
        gens[slot][row] = gen
        left[slot] -= 1
        if left[slot] == 0:
            index, b, cases = todo[slot]
            finish(index, b, cases, gens[slot], took)
            took = 0.0
    missing = [todo[slot][0] for slot, n in enumerate(left) if n]
    if missing:
        raise RuntimeError(f"generate_stream ended without completing chunk(s) {missing}")


def _case_result(case, prompt: Prompt, gen, settings: GenerationSettings, scorer) -> CaseResult:
    error_kind = getattr(gen, "error_kind", None)
    if error_kind is not None:
        # not scored: a failed request is an error outcome, not a wrong answer
        return CaseResult(
            case_id=case.id, prompt=prompt.text, completion="", expected=case.expected, score=0.0, passed=False,
            reason=f"error ({error_kind}): {gen.error or error_kind}", output_tokens=0, tags=dict(case.tags),
            error=error_kind, attempts=gen.attempts,
        )
    completion = cut_at_stop(gen.text, settings.stop)
    score = _safe_score(scorer, completion, case.expected)
    return CaseResult(
        case_id=case.id,
        prompt=prompt.text,
        completion=completion,
        expected=case.expected,
        score=float(score.value),
        passed=bool(score.passed),
        reason=score.reason,
        output_tokens=gen.output_tokens,
        tags=dict(case.tags),
        details=dict(score.details),
        attempts=getattr(gen, "attempts", 1),
    )


def effective_settings(suite, batch_size: int | None) -> GenerationSettings:
    """The suite's generation settings, with the sweep's batch size when one is given."""
    return suite.generation if batch_size is None else replace(suite.generation, batch_size=batch_size)
