"""Recorded workloads: reading JSONL traces, replay speed, and describe."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qeval.errors import UsageError
from qeval.load._arrivals import arrival_offsets
from qeval.load._types import ArrivalSpec, WorkItem
from qeval.load._workload import Workload, describe, read_workload, time_scaled
from qeval.models._base import Message


def _write(path: Path, lines: list[object]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


def _prompts(offsets: list[float] | None = None, n: int | None = None) -> Workload:
    """A workload of raw prompts "p0", "p1", ... at these offsets (None: untimed)."""
    count = len(offsets) if offsets is not None else n or 0
    return Workload(
        items=tuple(WorkItem((Message("user", f"p{i}"),), chat=False, offset_s=None if offsets is None else offsets[i])
                    for i in range(count)),
        source="test",
    )


# --- reading: round trip -----------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
MESSAGES = st.lists(st.builds(Message, st.sampled_from(["system", "user", "assistant"]), TEXT), min_size=1, max_size=4)
ITEMS = st.builds(
    lambda chat, prompt, messages, max_tokens: WorkItem(
        messages=tuple(messages) if chat else (Message("user", prompt),), chat=chat, max_tokens=max_tokens),
    st.booleans(), TEXT.filter(bool), MESSAGES, st.one_of(st.none(), st.integers(1, 100_000)),
)
OFFSETS = st.floats(min_value=0, max_value=1e6, allow_nan=False)
COUNTS = st.one_of(st.none(), st.integers(0, 1_000_000))


def _line(item: WorkItem, offset_s: float | None, prompt_tokens: int | None, output_tokens: int | None,
          extra: bool) -> dict[str, object]:
    """The trace line of an item, in the documented format."""
    line: dict[str, object] = {"id": "x", "model": "m"} if extra else {}  # fields a real trace carries
    if item.chat:
        line["messages"] = [{"role": m.role, "content": m.content} for m in item.messages]
    else:
        line["prompt"] = item.messages[0].content
    for key, value in (("max_tokens", item.max_tokens), ("offset_s", offset_s), ("prompt_tokens", prompt_tokens),
                       ("output_tokens", output_tokens)):
        if value is not None:
            line[key] = value
    return line


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), n=st.integers(1, 12), timed=st.booleans())
def test_a_written_workload_reads_back_identically(tmp_path, data, n, timed):
    items = data.draw(st.lists(ITEMS, min_size=n, max_size=n))
    offsets = data.draw(st.lists(OFFSETS, min_size=n, max_size=n)) if timed else [None] * n
    prompt_tokens = data.draw(st.lists(COUNTS, min_size=n, max_size=n))
    output_tokens = data.draw(st.lists(COUNTS, min_size=n, max_size=n))
    lines: list[object] = []
    for i in range(n):
        if data.draw(st.booleans()):
            lines.append("   ")  # blank lines are skipped
        lines.append(_line(items[i], offsets[i], prompt_tokens[i], output_tokens[i], extra=data.draw(st.booleans())))
    workload = read_workload(_write(tmp_path / "trace.jsonl", lines))
    assert workload.items == tuple(WorkItem(it.messages, it.chat, it.max_tokens, off) for it, off in zip(items, offsets))
    assert workload.timed == timed
    assert workload.prompt_tokens == (tuple(prompt_tokens) if any(c is not None for c in prompt_tokens) else ())
    assert workload.output_tokens == (tuple(output_tokens) if any(c is not None for c in output_tokens) else ())
    assert workload.source == str(tmp_path / "trace.jsonl")


def test_timestamps_become_offsets_from_the_earliest_and_file_order_is_kept(tmp_path):
    path = _write(tmp_path / "t.jsonl", [
        {"prompt": "b", "timestamp": 1_700_000_002.5},
        {"prompt": "a", "timestamp": 1_700_000_000.0},
        {"prompt": "c", "timestamp": 1_700_000_001.0},
    ])
    workload = read_workload(path)
    assert [i.messages[0].content for i in workload.items] == ["b", "a", "c"]
    assert [i.offset_s for i in workload.items] == [2.5, 0.0, 1.0]


def test_nulls_count_as_absent_and_a_byte_order_mark_is_not_part_of_line_one(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"prompt": "hi", "messages": None, "max_tokens": None}).encode())
    assert read_workload(path).items == (WorkItem((Message("user", "hi"),), chat=False),)


# --- reading: errors ---------------------------------------------------------------------

GOOD = {"prompt": "fine"}


@pytest.mark.parametrize("bad,says", [
    ({"prompt": "a", "messages": [{"role": "user", "content": "b"}]}, 'exactly one of "prompt" or "messages"'),
    ({"max_tokens": 5}, 'exactly one of "prompt" or "messages"'),
    ({"prompt": 5}, '"prompt" must be a non-empty string'),
    ({"prompt": ""}, '"prompt" must be a non-empty string'),
    ({"messages": []}, '"messages" must be a non-empty list'),
    ({"messages": "hi"}, '"messages" must be a non-empty list'),
    ({"messages": ["hi"]}, '"messages"[0] must be an object'),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]},
     '"messages"[1]: "role" must be one of system, user, assistant'),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}]}, '"content" must be a string'),
    ({"prompt": "a", "max_tokens": 0}, '"max_tokens" must be a positive whole number'),
    ({"prompt": "a", "max_tokens": 1.5}, '"max_tokens" must be a positive whole number'),
    ({"prompt": "a", "max_tokens": True}, '"max_tokens" must be a positive whole number'),
    ({"prompt": "a", "prompt_tokens": -1}, '"prompt_tokens" must be a whole number, 0 or more'),
    ({"prompt": "a", "output_tokens": "7"}, '"output_tokens" must be a whole number, 0 or more'),
    ("[1, 2]", "a JSON array, not an object"),
    ("null", "a JSON null, not an object"),
    ('{"prompt": "a",', "not valid JSON"),
])
def test_a_malformed_line_names_file_line_and_fix(tmp_path, bad, says):
    path = _write(tmp_path / "workload.jsonl", [GOOD, "", bad])
    with pytest.raises(UsageError) as err:
        read_workload(path)
    message = str(err.value)
    assert message.startswith(f"{path} line 3: ")
    assert says in message


@pytest.mark.parametrize("first,second,says", [
    ({"offset_s": 0}, {}, 'line 2: has no arrival time, but line 1 has "offset_s"'),
    ({}, {"timestamp": 5}, 'line 2: has "timestamp", but line 1 has no arrival time'),
    ({"offset_s": 0}, {"timestamp": 5}, 'line 2: has "timestamp", but line 1 has "offset_s"'),
    ({"offset_s": 0}, {"offset_s": -1}, 'line 2: "offset_s" is -1'),
    ({"offset_s": 0}, {"offset_s": "soon"}, 'line 2: "offset_s" must be a number of seconds'),
    ({"timestamp": 1}, {"timestamp": float("inf")}, 'line 2: "timestamp" must be a number of seconds'),
    ({"offset_s": 0}, {"offset_s": 1, "timestamp": 1}, 'line 2: has both "offset_s" and "timestamp"'),
])
def test_arrival_times_are_on_every_line_or_none(tmp_path, first, second, says):
    path = _write(tmp_path / "w.jsonl", [{"prompt": "a", **first}, {"prompt": "b", **second}])
    with pytest.raises(UsageError, match=str(path)) as err:
        read_workload(path)
    assert says in str(err.value)


def test_a_file_that_is_empty_missing_or_not_utf8_is_a_usage_error(tmp_path):
    empty = _write(tmp_path / "empty.jsonl", ["", "  "])
    with pytest.raises(UsageError, match="has no requests"):
        read_workload(empty)
    with pytest.raises(UsageError, match="cannot read it"):
        read_workload(tmp_path / "missing.jsonl")
    with pytest.raises(UsageError, match="cannot read it"):
        read_workload(tmp_path)
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(UsageError, match=r"line 2: not UTF-8"):
        read_workload(latin1)


# --- time_scaled -------------------------------------------------------------------------


def test_time_scale_multiplies_offsets_and_is_recorded():
    workload = _prompts([0.0, 1.0, 4.0])
    faster = time_scaled(workload, 0.5)
    assert [i.offset_s for i in faster.items] == [0.0, 0.5, 2.0]
    assert [i.messages for i in faster.items] == [i.messages for i in workload.items]
    assert faster.time_scale == 0.5 and time_scaled(faster, 4).time_scale == 2.0
    assert time_scaled(workload, 1.0) is workload


@pytest.mark.parametrize("scale", [0.0, -1.0, math.nan, math.inf])
def test_time_scale_must_be_positive_and_finite(scale):
    with pytest.raises(UsageError, match="--time-scale"):
        time_scaled(_prompts([0.0, 1.0]), scale)


def test_time_scale_needs_arrival_times_unless_it_is_one():
    untimed = _prompts(None, n=3)
    assert time_scaled(untimed, 1.0) is untimed
    with pytest.raises(UsageError, match="no arrival times"):
        time_scaled(untimed, 2.0)


# --- describe ----------------------------------------------------------------------------


def test_constant_gaps_have_cv_zero_and_suggest_constant():
    d = describe(_prompts([0.5 * i for i in range(11)]))
    assert d.duration_s == pytest.approx(5.0)
    assert d.mean_rate_per_s == pytest.approx(2.0)
    assert d.gap_cv == pytest.approx(0.0, abs=1e-9)
    assert d.suggested_arrival == ArrivalSpec("constant")
    assert d.suggestion == "--rate 2 --arrival constant"


def test_a_poisson_trace_has_cv_near_one_and_suggests_poisson():
    n = 5000
    d = describe(_prompts(list(arrival_offsets(4.0, ArrivalSpec("poisson"), n, seed=11))))
    assert abs(d.gap_cv - 1) <= 6 / math.sqrt(n)  # sd of a sample CV of exponential gaps: 1/sqrt(n)
    assert abs(d.mean_rate_per_s / 4.0 - 1) <= 6 / math.sqrt(n)
    assert d.suggested_arrival == ArrivalSpec("poisson")


def test_a_bursty_trace_suggests_gamma_with_its_cv_and_file_order_does_not_matter():
    offsets = list(arrival_offsets(4.0, ArrivalSpec("gamma", 3.0), 20_000, seed=2))
    d = describe(_prompts(offsets[::-1]))
    assert d.suggested_arrival is not None and d.suggested_arrival.shape == "gamma"
    assert abs(d.suggested_arrival.cv - 3.0) <= 0.3
    assert d.suggestion == f"--rate {d.mean_rate_per_s:.3g} --arrival gamma:{d.suggested_arrival.cv:g}"


def test_arrivals_are_none_without_times_and_partial_with_few():
    untimed = describe(_prompts(None, n=4))
    assert (untimed.duration_s, untimed.mean_rate_per_s, untimed.gap_cv, untimed.suggestion) == (None,) * 4
    two = describe(_prompts([0.0, 2.0]))
    assert (two.mean_rate_per_s, two.gap_cv, two.suggestion) == (0.5, None, None)
    at_once = describe(_prompts([3.0, 3.0, 3.0]))
    assert at_once.duration_s == 0 and at_once.mean_rate_per_s == math.inf
    assert at_once.suggestion == "--rate inf (every request at once)"


def _texts(lengths: list[int]) -> Workload:
    return Workload(items=tuple(WorkItem((Message("user", "x" * k),), chat=False) for k in lengths), source="t")


def test_prompt_lengths_are_characters_without_a_tokenizer():
    d = describe(_texts(list(range(1, 102))))
    assert d.prompt_lengths.unit == "characters"
    assert (d.prompt_lengths.p50, d.prompt_lengths.p90, d.prompt_lengths.p99, d.prompt_lengths.max) == (51, 91, 100, 101)
    chat = Workload(items=(WorkItem((Message("system", "ab"), Message("user", "cde")), chat=True),), source="t")
    assert describe(chat).prompt_lengths.max == len("ab\n\ncde")  # contents joined by a blank line
    assert describe(chat).chat_requests == 1


def test_prompt_lengths_prefer_recorded_then_the_tokenizer():
    texts = _texts([10, 20, 30])
    every_other_char = (lambda text: len(text) // 2)
    assert describe(texts, every_other_char).prompt_lengths.unit == "tokens (tokenizer)"
    assert describe(texts, every_other_char).prompt_lengths.max == 15
    recorded = Workload(items=texts.items, source="t", prompt_tokens=(7, 8, 9))
    d = describe(recorded, every_other_char)
    assert (d.prompt_lengths.unit, d.prompt_lengths.max) == ("tokens (recorded)", 9)
    partly = Workload(items=texts.items, source="t", prompt_tokens=(7, None, 9))
    assert describe(partly, every_other_char).prompt_lengths.unit == "tokens (tokenizer)"


def test_output_lengths_are_recorded_else_max_tokens_else_none():
    items = tuple(WorkItem((Message("user", "q"),), chat=False, max_tokens=m) for m in (100, 200, 300))
    assert describe(Workload(items=items, source="t", output_tokens=(5, 6, 7))).output_lengths.max == 7
    limits = describe(Workload(items=items, source="t")).output_lengths
    assert (limits.unit, limits.p50, limits.max) == ("max_tokens (limit)", 200, 300)
    some = items[:2] + (WorkItem((Message("user", "q"),), chat=False),)
    assert describe(Workload(items=some, source="t")).output_lengths is None
