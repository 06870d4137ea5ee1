"""The records the load generator passes around: what to send, at what load, and what one
request saw. Pure data; every time is in ms (``*_ms``) or s (``*_s``) as named."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from qeval.models._base import Message

ArrivalShape = Literal["poisson", "gamma", "constant"]


@dataclass(frozen=True)
class ArrivalSpec:
    """How open-loop requests are spaced: ``poisson`` (exponential gaps, CV 1), ``gamma`` (gaps
    with coefficient of variation ``cv``: < 1 smoother, > 1 burstier than Poisson) or
    ``constant`` (equal gaps, CV 0)."""

    shape: ArrivalShape = "poisson"
    cv: float = 1.0

    @property
    def label(self) -> str:
        return f"gamma:{self.cv:g}" if self.shape == "gamma" else self.shape


@dataclass(frozen=True)
class LoadLevel:
    """One load level. Closed loop (``kind="concurrency"``): ``value`` users, each sending its
    next request when its last one ends. Open loop (``kind="rate"``): requests arrive at
    ``value`` per second on the ``arrival`` schedule whatever the server does (``inf``: all
    at once), at most ``max_concurrency`` in flight (the client's cap; None = unbounded).
    Replay (``kind="replay"``): a recorded trace's own arrival offsets, times ``value``
    (``--time-scale``), open loop under the same cap."""

    kind: Literal["concurrency", "rate", "replay"]
    value: float
    """Users (concurrency), requests/s (rate), or the time scale of a recorded trace (replay)."""
    arrival: ArrivalSpec | None = None
    max_concurrency: int | None = None

    @property
    def label(self) -> str:
        if self.kind == "concurrency":
            return f"c={int(self.value)}"
        if self.kind == "replay":
            return "trace" if self.value == 1 else f"trace x{self.value:g}"
        rate = "inf" if math.isinf(self.value) else f"{self.value:g}"
        shape = f" {self.arrival.label}" if self.arrival is not None and not math.isinf(self.value) else ""
        return f"rate={rate}/s{shape}"


@dataclass(frozen=True)
class WorkItem:
    """One request of a workload, before a target prepares it."""

    messages: tuple[Message, ...]
    chat: bool
    """Through the chat template (``messages`` in a trace); otherwise one raw prompt (``prompt``)."""
    max_tokens: int | None = None
    """None: the run's ``--output-tokens`` (or the suite's max_new_tokens)."""
    offset_s: float | None = None
    """Recorded arrival, seconds after the trace's first request (trace replay)."""


@dataclass(frozen=True)
class RequestSample:
    """One request as the generator saw it. ``due_s``/``sent_s`` are seconds from the level's
    start; the latencies are ms from ``sent_s`` (so TTFT includes time queued in the server,
    and ``cap_wait_ms``, time held back by the client's own concurrency cap, is apart)."""

    index: int
    due_s: float
    sent_s: float
    cap_wait_ms: float
    token_times_ms: tuple[float, ...]
    """When each generated token (an endpoint: each content chunk) arrived, from ``sent_s``."""
    e2e_ms: float
    output_tokens: int | None
    error_kind: str | None = None
    client_overhead_ms: float = 0.0
    """Client time spent parsing between socket reads (endpoints)."""
    warmup: bool = False

    @property
    def ok(self) -> bool:
        return self.error_kind is None

    @property
    def ttft_ms(self) -> float | None:
        return self.token_times_ms[0] if self.token_times_ms else None


@dataclass(frozen=True)
class Reply:
    """What a target's sender hands back for one request. Times in ms from the moment it was sent."""

    token_times_ms: tuple[float, ...]
    e2e_ms: float
    output_tokens: int | None
    """The server's usage count (or the tokenizer's, or the content chunks: see ``token_source``)."""
    error_kind: str | None = None
    error: str | None = None
    client_overhead_ms: float = 0.0
    token_source: str = "ids"
