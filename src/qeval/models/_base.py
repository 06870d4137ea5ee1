"""The small interface every model source implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from qeval.applied import AppliedPrecision
from qeval.generation import GenerationSettings
from qeval.results import ModelCard


@dataclass(frozen=True)
class Message:
    """One turn of a conversation, as OpenAI-style chat APIs and chat templates take it."""

    role: Literal["system", "user", "assistant"]
    content: str


def conversation(user_text: str, system_prompt: str | None = None) -> tuple[Message, ...]:
    """The messages of a suite case: its system prompt (if any), then the user turn."""
    user = Message("user", user_text)
    return (user,) if system_prompt is None else (Message("system", system_prompt), user)


def plain_text(messages: Sequence[Message]) -> str:
    """The messages as one raw completion prompt (no chat template): contents joined by a blank line."""
    return "\n\n".join(m.content for m in messages)


@dataclass(frozen=True)
class Prompt:
    """One request as a target will run it: made by :meth:`TextModel.prepare` from messages,
    handed back to the same model's ``generate*`` methods."""

    messages: tuple[Message, ...]
    chat: bool
    """Through the chat template (in-process: the tokenizer's; an endpoint: the server's, via
    ``/v1/chat/completions``). Otherwise the messages are one raw completion prompt."""
    text: str
    """Exactly what the model reads: the templated text in-process, the raw completion prompt,
    or, for a chat request to an endpoint (templated on the server), the messages as the JSON
    body sent. Recorded as each case's ``prompt``."""


@dataclass(frozen=True)
class Abilities:
    """What a loaded text model (a provisioned target) can do: read by the passes, never probed."""

    refills_slots: bool = False
    """Rows finish one by one and free slots are refilled (the in-process engine; an endpoint's
    concurrent requests): ``generate_stream`` takes every prompt at once and the accuracy pass
    journals chunks as they end, instead of draining a batch per chunk."""
    remote: bool = False
    """Served by someone else: weights bytes and peak memory are unknown, never the client's RSS."""
    streams_tokens: bool = True
    """Token (or chunk) timestamps come with each timed request: TTFT and ITL can be measured."""
    checks_cases: bool = False
    """It serves recorded completions and must be told which cases it will be asked (``check_cases``)."""


def abilities_of(model: object) -> Abilities:
    """``model.abilities``; a user's own model (``--model module:attr``) without one gets the defaults."""
    found = getattr(model, "abilities", None)
    return found if isinstance(found, Abilities) else Abilities()


@dataclass(frozen=True)
class Generation:
    """One completion of the accuracy pass."""

    text: str
    output_tokens: int
    """Generated ids up to and including the first EOS (padding excluded)."""
    error_kind: str | None = None
    """Set when the request failed for good (an endpoint: ``timeout``, ``connection``, ``http_500``,
    ``truncated`` ...): the case is an ``error`` outcome, not a wrong answer."""
    error: str | None = None
    """One line saying what failed (never a secret)."""
    attempts: int = 1
    """Requests sent for this completion (retries included)."""
    token_source: str = "ids"
    """Where ``output_tokens`` came from: ``ids`` (in-process), ``usage`` (the server's count),
    ``tokenizer`` (the user's tokenizer on the text) or ``chunks`` (stream chunks: approximate)."""


@dataclass(frozen=True)
class TimedGeneration:
    """One batch-1 request of the timed pass. Times in ms from the request start.

    The request starts after tokenization; ``tokenize_ms`` is reported apart.
    """

    text: str
    output_tokens: int
    tokenize_ms: float
    token_times_ms: tuple[float, ...]
    """When each generated token became available (first = TTFT). From an endpoint: when each
    stream chunk carrying generated text arrived (a chunk may hold several tokens)."""
    error_kind: str | None = None
    """Set when the request failed for good: it is counted, not timed."""
    token_source: str = "ids"
    """As :attr:`Generation.token_source`."""
    client_overhead_ms: float | None = None
    """Time qeval itself spent between bytes arriving and reading the next ones (endpoints)."""


class TextModel(Protocol):
    """A loaded model at one precision, on one device."""

    device: str

    def prepare(self, messages: Sequence[Message], *, chat: bool) -> Prompt:
        """The request this model will run for ``messages`` (``chat``: through a chat template)."""
        ...

    def generate(self, prompts: Sequence[Prompt], settings: GenerationSettings) -> list[Generation]:
        """Greedy completions for a batch of prepared prompts, in order."""
        ...

    def generate_timed(self, prompt: Prompt, settings: GenerationSettings) -> TimedGeneration:
        """Greedy completion of one prompt with per-token timestamps."""
        ...

    def weights_bytes(self) -> int | None:
        """Real storage of the weights as held now."""
        ...

    def close(self) -> None:
        """Release the weights (and device memory)."""
        ...


class ProfiledTextModel(TextModel, Protocol):
    """A :class:`TextModel` with the optional methods ``qeval perf`` uses (it checks for them
    with ``hasattr``; a replayed recording has neither)."""

    def generate_timed_batch(self, prompts: Sequence[Prompt], settings: GenerationSettings) -> list[TimedGeneration]:
        """Greedy completions of one batch, each with its per-token timestamps from the
        batch start (after tokenization)."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` is as a prompt (``qeval perf`` sizes synthetic prompts)."""
        ...


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to evaluate, with what it cost to get there."""

    model: TextModel
    load_s: float
    quantize_s: float
    applied: AppliedPrecision = field(default_factory=AppliedPrecision)
    """What the precision applied."""


class ModelSource(Protocol):
    """Resolved model spec: knows its card and how to load itself at a precision."""

    card: ModelCard

    def load(self, precision: str, device: str, calibration: Any = None) -> LoadedModel:
        """``calibration``: a :class:`qeval.calibration.CalibrationSet` for calibrated precisions."""
        ...
