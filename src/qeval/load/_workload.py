"""Recorded workloads: a JSONL trace of requests (``--workload FILE``), replaying it faster or
slower, and what ``qeval workload describe`` says about one.

One request per line, a JSON object with exactly one of

* ``"prompt"``: a string, sent as one raw completion prompt;
* ``"messages"``: ``[{"role": "system"|"user"|"assistant", "content": "..."}, ...]``, sent
  through the chat template;

and, optionally, ``"max_tokens"`` (a positive integer), an arrival time, either
``"offset_s"`` (seconds since the first request, >= 0) or ``"timestamp"`` (absolute seconds,
e.g. Unix time; turned into offsets from the smallest one), and the recorded counts
``"prompt_tokens"`` and ``"output_tokens"`` (whole numbers >= 0; only ``describe`` reads them).
``null`` is the same as leaving a key out, blank lines are skipped, and keys not named here
are ignored, so production traces with extra fields read as they are. Either every line has
an arrival time of the same kind or none does.

Items keep the file's order; a replay sends each at its offset, so a trace need not be sorted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from qeval.errors import UsageError
from qeval.load._types import ArrivalSpec, WorkItem
from qeval.models._base import Message, plain_text

ROLES = ("system", "user", "assistant")
_LINE_EXAMPLE = '{"prompt": "Hello", "max_tokens": 64, "offset_s": 0.5}'
_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}
_MESSAGES_EXAMPLE = '"messages": [{"role": "user", "content": "Hello"}]'


@dataclass(frozen=True)
class Workload:
    """The requests of a trace, in file order."""

    items: tuple[WorkItem, ...]
    source: str
    """Where it was read from (the path as given)."""
    prompt_tokens: tuple[int | None, ...] = ()
    """Recorded prompt lengths, one per item (None where a line had none); () if none recorded."""
    output_tokens: tuple[int | None, ...] = ()
    """Recorded output lengths, the same way."""
    time_scale: float = 1.0
    """The factor the trace's offsets were multiplied by (:func:`time_scaled`)."""

    def __post_init__(self) -> None:
        for name, counts in (("prompt_tokens", self.prompt_tokens), ("output_tokens", self.output_tokens)):
            if counts and len(counts) != len(self.items):
                raise ValueError(f"Workload.{name} has {len(counts)} entries for {len(self.items)} items")

    @property
    def timed(self) -> bool:
        """Every request has a recorded arrival (replay sends each at its ``offset_s``)."""
        return bool(self.items) and all(item.offset_s is not None for item in self.items)


@dataclass(frozen=True)
class LengthSummary:
    """Percentiles of one length over a workload's requests, in ``unit``."""

    unit: str
    """``tokens (recorded)``, ``tokens (tokenizer)``, ``characters`` or ``max_tokens (limit)``."""
    p50: float
    p90: float
    p99: float
    max: float


@dataclass(frozen=True)
class WorkloadDescription:
    """What a workload asks of a server: how many requests, how long, how they arrive."""

    source: str
    requests: int
    chat_requests: int
    """Requests with ``messages`` (the rest are raw ``prompt`` s)."""
    prompt_lengths: LengthSummary
    output_lengths: LengthSummary | None
    """Recorded ``output_tokens`` when every line has one, else ``max_tokens`` when every line
    has one, else None."""
    duration_s: float | None
    """First to last arrival; None when the trace has no arrival times."""
    mean_rate_per_s: float | None
    """Arrivals per second over ``duration_s`` (``inf``: all at once); None with fewer than 2 arrivals."""
    gap_cv: float | None
    """Coefficient of variation of the gaps between arrivals, the burstiness: ~1 Poisson,
    above 1 bursty, below 1 smoother, 0 evenly spaced. None with fewer than 3 arrivals."""
    suggested_arrival: ArrivalSpec | None
    """The ``--arrival`` shape whose gaps have this CV."""
    suggestion: str | None
    """One line: the synthetic load flags that resemble this trace's arrivals."""


def read_workload(path: Path) -> Workload:
    """Read a JSONL trace (the format is in this module's docstring). Every malformed line
    raises :class:`UsageError` naming the file, the line number, what is wrong and how to fix it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"Workload {path}: cannot read it ({exc.strerror or exc}). Give a JSONL file, one "
                         f"request per line, e.g. {_LINE_EXAMPLE}") from None
    items: list[WorkItem] = []
    prompt_tokens: list[int | None] = []
    output_tokens: list[int | None] = []
    times: list[tuple[int, str | None, float | None]] = []  # (line number, key, value)
    # a byte-order mark (some Windows editors write one) is not part of the first line
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        where = f"{path} line {number}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"{where}: not UTF-8 text. Save the file as UTF-8.") from None
        if not text.strip():
            continue
        item, prompt_count, output_count, time_key, time_s = _read_line(text, where)
        items.append(item)
        prompt_tokens.append(prompt_count)
        output_tokens.append(output_count)
        times.append((number, time_key, time_s))
    if not items:
        raise UsageError(f"Workload {path} has no requests. Write one JSON object per line, e.g. {_LINE_EXAMPLE}")
    offsets = _offsets(times, path)
    return Workload(
        items=tuple(replace(item, offset_s=offset) for item, offset in zip(items, offsets)),
        source=str(path),
        prompt_tokens=tuple(prompt_tokens) if any(c is not None for c in prompt_tokens) else (),
        output_tokens=tuple(output_tokens) if any(c is not None for c in output_tokens) else (),
    )


def time_scaled(workload: Workload, scale: float) -> Workload:
    """The workload with every offset multiplied by ``scale`` (``--time-scale 0.5`` replays a
    trace twice as fast, 2 at half speed)."""
    if not (math.isfinite(scale) and scale > 0):
        raise UsageError(f"--time-scale {scale:g}: must be a finite number above 0, e.g. --time-scale 0.5 "
                         "(twice as fast).")
    if scale == 1:
        return workload
    if not workload.timed:
        raise UsageError(f"--time-scale {scale:g}: {workload.source} has no arrival times (offset_s or timestamp) "
                         "to scale. Leave --time-scale out, or give the load with --rate or --concurrency.")
    items = tuple(replace(item, offset_s=(item.offset_s or 0.0) * scale) for item in workload.items)
    return replace(workload, items=items, time_scale=workload.time_scale * scale)


def describe(workload: Workload, count_tokens: Callable[[str], int] | None = None) -> WorkloadDescription:
    """Summarise ``workload``. Prompt lengths are the recorded ``prompt_tokens`` when every line
    has one, else ``count_tokens`` of each prompt's text (messages' contents joined by blank
    lines, no chat template) when given, else its characters."""
    texts = [plain_text(item.messages) for item in workload.items]
    recorded_prompts = _all_recorded(workload.prompt_tokens, len(texts))
    if recorded_prompts is not None:
        prompts = _summary(recorded_prompts, "tokens (recorded)")
    elif count_tokens is not None:
        prompts = _summary([count_tokens(t) for t in texts], "tokens (tokenizer)")
    else:
        prompts = _summary([len(t) for t in texts], "characters")
    recorded_outputs = _all_recorded(workload.output_tokens, len(texts))
    limits = [item.max_tokens for item in workload.items]
    if recorded_outputs is not None:
        outputs: LengthSummary | None = _summary(recorded_outputs, "tokens (recorded)")
    elif all(m is not None for m in limits):
        outputs = _summary([m for m in limits if m is not None], "max_tokens (limit)")
    else:
        outputs = None
    duration_s = rate_per_s = cv = None
    arrival = suggestion = None
    if workload.timed:
        offsets = np.sort(np.array([item.offset_s for item in workload.items], dtype=float))
        duration_s = float(offsets[-1] - offsets[0])
        rate_per_s, cv, arrival, suggestion = _arrivals(offsets)
    return WorkloadDescription(
        source=workload.source,
        requests=len(workload.items),
        chat_requests=sum(item.chat for item in workload.items),
        prompt_lengths=prompts,
        output_lengths=outputs,
        duration_s=duration_s,
        mean_rate_per_s=rate_per_s,
        gap_cv=cv,
        suggested_arrival=arrival,
        suggestion=suggestion,
    )


def _arrivals(offsets: np.ndarray) -> tuple[float | None, float | None, ArrivalSpec | None, str | None]:
    """(mean rate, gap CV, matching arrival shape, the flags line) of sorted arrival times."""
    gaps_s = np.diff(offsets)
    if len(gaps_s) == 0:
        return None, None, None, None
    mean_gap_s = float(gaps_s.mean())
    if mean_gap_s == 0:
        return math.inf, None, None, "--rate inf (every request at once)"
    rate_per_s = 1.0 / mean_gap_s
    if len(gaps_s) < 2:
        return rate_per_s, None, None, None
    cv = float(gaps_s.std(ddof=1) / mean_gap_s)
    # A Poisson trace's sample CV has sd ~ 1/sqrt(gaps) (delta method, exponential gaps):
    # call it Poisson within 2 sd of 1, so a short Poisson trace is not read as gamma.
    if cv < 0.05:
        arrival = ArrivalSpec("constant")
    elif abs(cv - 1) <= max(0.1, 2 / math.sqrt(len(gaps_s))):
        arrival = ArrivalSpec("poisson")
    else:
        arrival = ArrivalSpec("gamma", float(f"{cv:.2g}"))
    return rate_per_s, cv, arrival, f"--rate {rate_per_s:.3g} --arrival {arrival.label}"


def _all_recorded(counts: tuple[int | None, ...], n: int) -> list[int] | None:
    if len(counts) != n or any(c is None for c in counts):
        return None
    return [c for c in counts if c is not None]


def _summary(values: list[int], unit: str) -> LengthSummary:
    p50, p90, p99 = (float(v) for v in np.percentile(np.array(values, dtype=float), [50, 90, 99]))
    return LengthSummary(unit=unit, p50=p50, p90=p90, p99=p99, max=float(max(values)))


def _read_line(text: str, where: str) -> tuple[WorkItem, int | None, int | None, str | None, float | None]:
    """One trace line: the item (no offset yet), its recorded counts, and its arrival key and value."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}). Write one JSON object per "
                         f"line, e.g. {_LINE_EXAMPLE}") from None
    except RecursionError:
        raise UsageError(f"{where}: nested too deeply to read. Write one flat JSON object per line.") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{where}: a JSON {_JSON_TYPES.get(type(obj), 'value')}, not an object. Write one object per line, "
                         f"e.g. {_LINE_EXAMPLE}")
    fields = {k: v for k, v in obj.items() if v is not None}
    if ("prompt" in fields) == ("messages" in fields):
        found = "it has both" if "prompt" in fields else "it has neither"
        raise UsageError(f'{where}: needs exactly one of "prompt" or "messages" ({found}). Give "prompt" (a string, '
                         f'a raw prompt) or "messages" (role/content objects, through the chat template), e.g. '
                         f'{_LINE_EXAMPLE} or {{{_MESSAGES_EXAMPLE}}}.')
    if "prompt" in fields:
        prompt = fields["prompt"]
        if not isinstance(prompt, str) or not prompt:
            raise UsageError(f'{where}: "prompt" must be a non-empty string, found {_shown(prompt)}.')
        item = WorkItem(messages=(Message("user", prompt),), chat=False)
    else:
        item = WorkItem(messages=_messages(fields["messages"], where), chat=True)
    max_tokens = _count(fields, "max_tokens", where, minimum=1)
    if max_tokens is not None:
        item = replace(item, max_tokens=max_tokens)
    if "offset_s" in fields and "timestamp" in fields:
        raise UsageError(f'{where}: has both "offset_s" and "timestamp"; give one arrival time per line '
                         "(the same key on every line).")
    time_key = "offset_s" if "offset_s" in fields else "timestamp" if "timestamp" in fields else None
    time_s = None
    if time_key is not None:
        time_s = fields[time_key]
        if isinstance(time_s, bool) or not isinstance(time_s, (int, float)) or not math.isfinite(time_s):
            raise UsageError(f'{where}: "{time_key}" must be a number of seconds, found {_shown(time_s)}.')
        if time_key == "offset_s" and time_s < 0:
            raise UsageError(f'{where}: "offset_s" is {time_s:g}; offsets are seconds since the first request, '
                             '0 or more (absolute times go in "timestamp").')
        time_s = float(time_s)
    prompt_count = _count(fields, "prompt_tokens", where, minimum=0)
    output_count = _count(fields, "output_tokens", where, minimum=0)
    return item, prompt_count, output_count, time_key, time_s


def _messages(value: Any, where: str) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise UsageError(f'{where}: "messages" must be a non-empty list, e.g. {_MESSAGES_EXAMPLE}; '
                         f"found {_shown(value)}.")
    messages = []
    for i, turn in enumerate(value):
        at = f'{where}: "messages"[{i}]'
        if not isinstance(turn, dict):
            raise UsageError(f'{at} must be an object with "role" and "content", found {_shown(turn)}.')
        role, content = turn.get("role"), turn.get("content")
        if role not in ROLES:
            raise UsageError(f'{at}: "role" must be one of {", ".join(ROLES)}, found {_shown(role)}.')
        if not isinstance(content, str):
            raise UsageError(f'{at}: "content" must be a string (lists of content parts are not supported), '
                             f"found {_shown(content)}.")
        messages.append(Message(role, content))
    return tuple(messages)


def _count(fields: dict[str, Any], key: str, where: str, minimum: int) -> int | None:
    value = fields.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive whole number" if minimum == 1 else "a whole number, 0 or more"
        raise UsageError(f'{where}: "{key}" must be {what}, found {_shown(value)}.')
    return value


def _offsets(times: list[tuple[int, str | None, float | None]], path: Path) -> list[float | None]:
    """Every line's offset in seconds, or all None; mixed lines raise :class:`UsageError`."""
    first_line, first_key, _ = times[0]
    for number, key, _ in times[1:]:
        if key != first_key:
            raise UsageError(
                f"{path} line {number}: has {_time_key(key)}, but line {first_line} has {_time_key(first_key)}. "
                'Either every line has an arrival time, all "offset_s" or all "timestamp", or none does.'
            )
    if first_key is None:
        return [None] * len(times)
    values = [t for _, _, t in times if t is not None]
    start_s = min(values) if first_key == "timestamp" else 0.0
    return [t - start_s for t in values]


def _time_key(key: str | None) -> str:
    return f'"{key}"' if key is not None else "no arrival time"


def _shown(value: Any) -> str:
    """A JSON value as an error quotes it: short, its type plain."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."
