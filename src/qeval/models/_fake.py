"""A deterministic fake model for tests: no torch, instant load, scripted answers.

``responder(prompt, precision) -> str`` decides every completion, so a test can
plant exactly which cases a precision gets wrong. A calibrated precision is
passed as ``"gptq-int4@<set>/s<seed>"`` so calibration choices can differ too. Each token "takes"
``token_delay_s`` of real time in the timed pass, so timing code is exercised
with real clocks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from qeval.applied import AppliedPrecision
from qeval.generation import GenerationSettings
from qeval.models._base import Generation, LoadedModel, Message, Prompt, TimedGeneration
from qeval.results import ModelCard

Responder = Callable[[str, str], str]


def _default_responder(prompt: str, precision: str) -> str:
    return "The answer is 42."


class FakeTextModel:
    def __init__(self, responder: Responder, precision: str, token_delay_s: float, weights_bytes: int) -> None:
        self._responder = responder
        self._precision = precision
        self._delay = token_delay_s
        self._weights_bytes = weights_bytes
        self.device = "cpu"

    def prepare(self, messages: Sequence[Message], *, chat: bool) -> Prompt:
        if chat:
            text = "".join(f"[{m.role}] {m.content}\n" for m in messages) + "[assistant]"
        else:  # earlier turns marked, the last one raw
            text = "".join(f"[{m.role}] {m.content}\n" for m in messages[:-1]) + (messages[-1].content if messages else "")
        return Prompt(tuple(messages), chat=chat, text=text)

    def _complete(self, prompt: Prompt, settings: GenerationSettings) -> tuple[str, int]:
        words = self._responder(prompt.text, self._precision).split(" ")[: settings.max_new_tokens]
        return " ".join(words), len(words)

    def generate(self, prompts: Sequence[Prompt], settings: GenerationSettings) -> list[Generation]:
        return [Generation(*self._complete(p, settings)) for p in prompts]

    def generate_timed(self, prompt: Prompt, settings: GenerationSettings) -> TimedGeneration:
        t0 = time.perf_counter()
        text, n = self._complete(prompt, settings)
        start = time.perf_counter()
        times = []
        for _ in range(n):
            time.sleep(self._delay)
            times.append((time.perf_counter() - start) * 1000.0)
        return TimedGeneration(text=text, output_tokens=n, tokenize_ms=(start - t0) * 1000.0, token_times_ms=tuple(times))

    def generate_timed_batch(self, prompts: Sequence[Prompt], settings: GenerationSettings) -> list[TimedGeneration]:
        """One batch: every row shares the step times (one ``token_delay_s`` per step) and
        stops at its own length, like a real batch whose rows end at different EOS."""
        t0 = time.perf_counter()
        done = [self._complete(p, settings) for p in prompts]
        start = time.perf_counter()
        times = []
        for _ in range(max((n for _, n in done), default=0)):
            time.sleep(self._delay)
            times.append((time.perf_counter() - start) * 1000.0)
        tokenize_ms = (start - t0) * 1000.0
        return [
            TimedGeneration(text=text, output_tokens=n, tokenize_ms=tokenize_ms, token_times_ms=tuple(times[:n]))
            for text, n in done
        ]

    def count_tokens(self, text: str) -> int:
        """The fake's tokens are words."""
        return len(text.split())

    def weights_bytes(self) -> int | None:
        return self._weights_bytes

    def close(self) -> None:
        pass


_FAKE_BITS = {"fp32": 32, "as-is": 32, "bf16": 16, "fp16": 16, "int8": 8, "w8a8": 8, "fp8": 8}


@dataclass
class FakeSource:
    """Model spec ``fake``: for tests and dry runs of the pipeline."""

    responder: Responder = _default_responder
    token_delay_s: float = 0.001
    parameters: int = 1_000_000
    card: ModelCard = field(
        default_factory=lambda: ModelCard(
            spec="fake",
            name="fake",
            source_precision="fp32 (fake model)",
            parameters=1_000_000,
            architecture="FakeModel",
            path=None,
            notes="Deterministic scripted completions; for tests only.",
        )
    )

    def load(self, precision: str, device: str, calibration=None) -> LoadedModel:
        from qeval.errors import UsageError
        from qeval.quantize import get_precision

        prec = get_precision(precision)  # unknown names fail the same way as for real models
        if prec.needs_calibration and calibration is None:
            raise UsageError(f"{precision} needs calibration text: pass --calibration NAME.")
        bits = 8 if precision.endswith("int8") else _FAKE_BITS.get(precision, 4)
        applied = {"precision": precision, "fake": True, "bits": bits}
        seen_as = precision
        if calibration is not None and prec.needs_calibration:
            applied["calibration"] = calibration.record()
            # responders see which calibration sample "quantized" the model, e.g. "gptq-int4@medical/s0"
            seen_as = f"{precision}@{calibration.name}/s{calibration.seed}"
        model = FakeTextModel(self.responder, seen_as, self.token_delay_s, self.parameters * bits // 8)
        return LoadedModel(model=model, load_s=0.0, quantize_s=0.0, applied=AppliedPrecision.build(**applied))
