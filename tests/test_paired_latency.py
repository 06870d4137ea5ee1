"""Paired timed passes: ABBA order, aligned pairs, and ratios measured from the pairs."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qeval.generation import GenerationSettings
from qeval.gates import parse_slo
from qeval.measure import for_slo
from qeval.models import FakeTextModel, TimedGeneration, conversation
from qeval.timing import pair_up, paired_timed_pass
from tests.report.conftest import ok_cell


class _Logged(FakeTextModel):
    def __init__(self, name: str, delay_s: float, log: list[str]) -> None:
        super().__init__(lambda prompt, precision: "one two three four five", name, delay_s, 0)
        self._name, self._log = name, log

    def generate_timed(self, prompt, settings):
        self._log.append(self._name)
        return super().generate_timed(prompt, settings)


def _prompts(model, n):
    return [model.prepare(conversation(f"q{i}"), chat=False) for i in range(n)]


def test_requests_alternate_abba_and_the_ratio_comes_from_the_pairs():
    log: list[str] = []
    ref, slow = _Logged("R", 0.002, log), _Logged("T", 0.006, log)
    settings = GenerationSettings(max_new_tokens=5)
    timed = paired_timed_pass(slow, _prompts(slow, 4), ref, _prompts(ref, 4), "fp32", [f"c{i}" for i in range(4)],
                              settings, samples=6, warmup=1)
    assert log[:2] == ["R", "T"]  # warm-up: one of each
    assert "".join(log[2:]) == "RTTRRTTRRTTR"
    paired = timed.latency.paired
    assert paired is not None and paired.reference == "fp32" and paired.pairs == 6
    assert all(len(c.target) == len(c.reference) == 6 for c in paired.samples_ms.values())
    # the target's own statistics are its own requests'
    assert timed.latency.requests == 6 and timed.latency.samples_ms["e2e"] == paired.samples_ms["e2e"].target

    cell = replace(ok_cell("int8", "mini"), latency=timed.latency)
    reference = ok_cell("fp32", "mini")
    m = for_slo(parse_slo("p50_tpot_ratio_vs(fp32) <= 10"), cell, reference)
    assert "ABBA pairs" in m.method and m.n == 6
    assert m.value == pytest.approx(3.0, rel=0.35)  # 6 ms vs 2 ms a token, give or take the scheduler
    # against another reference the pairs say nothing: the unpaired method is used
    bf16 = replace(ok_cell("bf16", "mini"), latency=replace(timed.latency, paired=None))
    other = for_slo(parse_slo("p50_tpot_ratio_vs(bf16) <= 10"), cell, bf16)
    assert "ABBA" not in other.method


def _gen(times, error=None):
    return TimedGeneration(text="x", output_tokens=len(times), tokenize_ms=0.0, token_times_ms=tuple(times),
                           error_kind=error)


@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.integers(1, 4), st.integers(1, 4)), max_size=12))
def test_pairs_keep_only_requests_answered_on_both_sides(rows):
    mine = [_gen([10.0 * (k + 1) for k in range(a)], None if ok else "timeout") for ok, _, a, _ in rows]
    theirs = [_gen([5.0 * (k + 1) for k in range(b)], None if ok else "http_500") for _, ok, _, b in rows]
    paired = pair_up(mine, theirs, "ref")
    both = [(a, b) for (ok_a, ok_b, a, b) in rows if ok_a and ok_b]
    assert paired.pairs == len(both)
    assert paired.samples_ms["ttft"].target == tuple(10.0 for _ in both)
    assert paired.samples_ms["e2e"].reference == tuple(5.0 * b for _, b in both)
    # TPOT needs two tokens on both sides of the pair
    assert len(paired.samples_ms["tpot"].target) == sum(1 for a, b in both if a >= 2 and b >= 2)
