"""``replay:PATH``: recorded completions instead of a model, to re-score without a GPU.

A sweep's ``samples.jsonl`` keeps every completion it scored. Replaying it feeds those
completions back through the accuracy pass, so a scorer fix, a new stop string or an
audit re-scores stored outputs on any machine, with nothing generated.

Spec. ``replay:PATH`` where PATH is a ``samples.jsonl`` or the run folder holding one;
``replay:PATH#PRECISION`` picks the recorded precision whose completions are replayed
(any recorded label, e.g. ``int4`` or ``gptq-int4@medical/s0``). The file is read and
checked when the spec is resolved; a problem is a :class:`ModelError` naming file:line.

What the sweep's precision means. Nothing is quantized: the sweep's precision only
labels the cells and picks the recorded precision. Recommended: ``--precisions as-is``,
which replays the file's only precision, or the ``#PRECISION`` one. Without ``#``, a
sweep precision that the file recorded replays that precision's completions, so
``--precisions fp32,int4`` re-scores both cells of a two-precision run (only where those
precisions are available on this machine: the sweep checks that before loading). Any
other label is refused rather than put on completions it did not produce. Each cell's
``precision_config`` records the file, its sha256 and the recorded precision.

How a prompt finds its completion. The model interface hands a model a case's
messages (``prepare``) and later the prepared prompts (``generate``); case ids never
reach it. The recorded ``prompt`` is what the recording model's formatter (chat template,
system prompt, BOS) made of that user text, which a replay cannot redo. So
``prepare`` finds the recorded prompt that holds the user text verbatim, with only
template text around it: the text before it must be common to every recorded prompt of
that suite, and so must the text after it (a suite's chat-template head and tail); it
must hold the suite's system prompt before the user text; the shortest such prompt wins
(a case whose text merely contains this one carries extra text). ``prepare`` returns
a prompt whose text is that recorded prompt, so the new samples.jsonl shows the prompt the completion came from,
and ``generate`` looks completions up by it. One precision's completions are searched.
Matching cannot see suite names: replay the suites that were recorded. A user text with
no recorded prompt, or one that fits recorded prompts with different completions (say
the same question in two suites recorded with different ``max_new_tokens``), is never
guessed: ``generate`` raises a :class:`ModelError` listing every such case of the pass by
its user text, with its ``suite/case_id`` where another recorded precision has that case
(ids never reach a model), and the sweep records a failed cell.

Not measured. Nothing runs, so there is no latency: ``generate_timed`` raises, which the
sweep records as a note on an otherwise ok cell (run with ``--latency-samples 0`` to skip
the timed pass). ``weights_bytes`` is None; a cell's peak memory is the replaying process's.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qeval.applied import AppliedPrecision, ReplayUsed
from qeval.generation import GenerationSettings
from qeval.errors import ModelError
from qeval.models._base import Abilities, Generation, LoadedModel, Message, Prompt, TimedGeneration
from qeval.results import ModelCard

REPLAY_PREFIX = "replay:"
_AS_IS = "as-is"  # the precision that only labels a replay
_TEXT_KEYS = ("precision", "suite", "case_id", "prompt", "completion")
_LISTED = 20  # unresolved cases named in one error


@dataclass(frozen=True)
class RecordedCompletion:
    """One line of samples.jsonl, as replay needs it."""

    precision: str
    suite: str
    case_id: str
    prompt: str
    completion: str
    output_tokens: int
    line: int
    """Line number in the file (1-based), for error messages."""


@dataclass(frozen=True)
class Recording:
    """A samples.jsonl read and checked."""

    path: Path
    sha256: str
    rows: tuple[RecordedCompletion, ...]

    @property
    def precisions(self) -> tuple[str, ...]:
        """Recorded precision labels, in file order."""
        return tuple(dict.fromkeys(r.precision for r in self.rows))


def is_replay_spec(spec: str) -> bool:
    return spec.startswith(REPLAY_PREFIX)


def parse_replay_spec(spec: str) -> tuple[Path, str | None]:
    """``replay:PATH[#PRECISION]`` -> (PATH, PRECISION or None). A PATH that exists keeps any ``#``."""
    body = spec[len(REPLAY_PREFIX) :]
    if not body:
        raise ModelError(
            f"Model {spec!r}: replay needs a path, e.g. --model replay:reports/RUN_ID "
            "(a run folder) or replay:reports/RUN_ID/samples.jsonl, optionally #PRECISION."
        )
    path, selector = body, None
    if "#" in body and not Path(body).expanduser().exists():
        path, _, selector = body.rpartition("#")
        if not path or not selector:
            raise ModelError(
                f"Model {spec!r}: write replay:PATH#PRECISION, with both parts, e.g. replay:reports/RUN#int4."
            )
    return Path(path).expanduser(), selector


def read_recording(path: Path) -> Recording:
    """Read ``samples.jsonl`` (or the run folder holding it); every problem names file:line."""
    from qeval.files import SAMPLES_FILE

    target = path / SAMPLES_FILE if path.is_dir() else path
    if not target.exists():
        where = f"{path} has no {SAMPLES_FILE}" if path.is_dir() else f"{path} does not exist"
        raise ModelError(
            f"Replay file not found: {where}. Give the samples.jsonl a sweep wrote, or its run folder."
        )
    try:
        data = target.read_bytes()
    except OSError as exc:
        raise ModelError(f"{target}: cannot read it ({exc.strerror or exc}).") from exc
    rows: list[RecordedCompletion] = []
    first_seen: dict[tuple[str, str, str], int] = {}
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        row = _parse_line(target, lineno, raw)
        if row is None:
            continue
        key = (row.precision, row.suite, row.case_id)
        if key in first_seen:
            raise ModelError(
                f"{target}:{lineno}: case {row.suite}/{row.case_id} at precision {row.precision!r} appears "
                f"again (first on line {first_seen[key]}); a recording holds one completion per case."
            )
        first_seen[key] = lineno
        rows.append(row)
    if not rows:
        raise ModelError(
            f"{target}: holds no recorded completions (no JSON lines). Replay a samples.jsonl a sweep wrote."
        )
    return Recording(path=target, sha256=hashlib.sha256(data).hexdigest(), rows=tuple(rows))


def _parse_line(target: Path, lineno: int, raw: bytes) -> RecordedCompletion | None:
    where = f"{target}:{lineno}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(
            f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start}); is this a samples.jsonl?"
        ) from None
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc) or type(exc).__name__
        raise ModelError(f"{where}: not valid JSON ({msg}); samples.jsonl holds one JSON object per line.") from None
    if not isinstance(obj, dict):
        raise ModelError(f"{where}: expected a JSON object per line, got {type(obj).__name__}.")
    for key in (*_TEXT_KEYS, "output_tokens"):
        if key not in obj:
            raise ModelError(
                f"{where}: key {key!r} is missing; every line needs {', '.join(_TEXT_KEYS)} and output_tokens "
                "(the samples.jsonl format a sweep writes)."
            )
    for key in _TEXT_KEYS:
        if not isinstance(obj[key], str):
            raise ModelError(f"{where}: {key!r} must be a string, got {type(obj[key]).__name__}.")
    tokens = obj["output_tokens"]
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise ModelError(f"{where}: 'output_tokens' must be a whole number >= 0, got {tokens!r}.")
    return RecordedCompletion(**{k: obj[k] for k in _TEXT_KEYS}, output_tokens=tokens, line=lineno)


def _recorded_model_name(recording: Recording) -> str | None:
    """The recorded model's name from results.json beside the file, when it is there and readable."""
    from qeval.files import RESULTS_FILE

    try:
        data = json.loads((recording.path.parent / RESULTS_FILE).read_text(encoding="utf-8"))
        name = data["model"]["name"]
    except (OSError, ValueError, RecursionError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) else None


class _PromptIndex:
    """One precision's completions, found from user text (see the module docstring)."""

    def __init__(self, rows: Sequence[RecordedCompletion]) -> None:
        self.by_prompt: dict[str, list[RecordedCompletion]] = {}
        by_suite: dict[str, list[str]] = {}
        for row in rows:
            self.by_prompt.setdefault(row.prompt, []).append(row)
            by_suite.setdefault(row.suite, []).append(row.prompt)
        shapes: list[tuple[str, int, int]] = []
        for prompts in by_suite.values():
            distinct = list(dict.fromkeys(prompts))
            head = len(os.path.commonprefix(distinct))
            tail = len(os.path.commonprefix([p[::-1] for p in distinct]))
            shapes.extend((p, head, tail) for p in distinct)
        # shortest first: the first fit fixes the length, equal-length fits are ambiguous
        self._shapes = sorted(set(shapes), key=lambda s: (len(s[0]), s[0]))

    def find(self, user_text: str, system_prompt: str | None) -> list[str]:
        """The shortest recorded prompts holding ``user_text`` between template text (0, 1 or more)."""
        found: list[str] = []
        for prompt, head, tail in self._shapes:
            if len(prompt) < len(user_text):
                continue
            if found and len(prompt) > len(found[0]):
                break
            if _fits(prompt, user_text, head, tail, system_prompt) and prompt not in found:
                found.append(prompt)
        return found


def _fits(prompt: str, user_text: str, head: int, tail: int, system_prompt: str | None) -> bool:
    k = prompt.find(user_text)
    while k != -1 and k <= head:
        if len(prompt) - k - len(user_text) <= tail and (not system_prompt or system_prompt in prompt[:k]):
            return True
        k = prompt.find(user_text, k + 1)
    return False


def _short(text: str, width: int = 32) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= width else text[: width - 3] + "...")


class ReplayTextModel:
    abilities = Abilities(streams_tokens=False, checks_cases=True)
    """Completions of one recorded precision, served by prompt; nothing is generated."""

    def __init__(self, recording: Recording, precision: str, device: str) -> None:
        self._recording = recording
        self._precision = precision
        self._index = _PromptIndex([r for r in recording.rows if r.precision == precision])
        # placeholder -> (ambiguous?, note) for user texts prepare could not resolve;
        # prepare runs for every case before the first generate, which reports them all
        self._unresolved: dict[str, tuple[bool, str]] = {}
        self._all_precisions: _PromptIndex | None = None  # built only to name missing cases
        self.device = device

    def prepare(self, messages: Sequence[Message], *, chat: bool) -> Prompt:
        user_text = next((m.content for m in reversed(messages) if m.role == "user"), "")
        system_prompt = next((m.content for m in messages if m.role == "system"), None)
        return Prompt(tuple(messages), chat=chat, text=self._recorded_prompt(user_text, system_prompt))

    def _recorded_prompt(self, user_text: str, system_prompt: str | None) -> str:
        found = self._index.find(user_text, system_prompt)
        if not found and user_text.strip() != user_text:  # chat templates that trim the message
            found = self._index.find(user_text.strip(), system_prompt)
        rows = [r for p in found for r in self._index.by_prompt[p]]
        if len(found) == 1 and len({(r.completion, r.output_tokens) for r in rows}) == 1:
            return found[0]
        note = _short(user_text)
        if rows:
            note += " (fits " + ", ".join(f"{r.suite}/{r.case_id}" for r in rows[:3]) + ")"
        else:
            note = self._case_ids_elsewhere(user_text, system_prompt) + note
        placeholder = f"\x00replay-unresolved-{len(self._unresolved)}\x00{user_text}"
        self._unresolved[placeholder] = (bool(rows), note)
        return placeholder

    def _case_ids_elsewhere(self, user_text: str, system_prompt: str | None) -> str:
        """``"suite/id "`` when another recorded precision has this case (a model never sees ids)."""
        if self._all_precisions is None:
            self._all_precisions = _PromptIndex(self._recording.rows)
        found = self._all_precisions.find(user_text, system_prompt)
        ids = sorted({f"{r.suite}/{r.case_id}" for p in found for r in self._all_precisions.by_prompt[p]})
        return f"{ids[0]} " if len(ids) == 1 else ""

    def _unresolved_error(self) -> ModelError:
        notes = list(self._unresolved.values())
        self._unresolved.clear()
        ambiguous = sum(1 for is_ambiguous, _ in notes if is_ambiguous)
        counts = [f"{len(notes) - ambiguous} case(s) have no recorded completion" if len(notes) > ambiguous else "",
                  f"{ambiguous} fit recorded cases with different completions" if ambiguous else ""]
        listed = ", ".join(note for _, note in notes[:_LISTED])
        if len(notes) > _LISTED:
            listed += f", ... ({len(notes) - _LISTED} more)"
        # the count and the fix come first: a failed cell's reason is cut at 500 characters
        return ModelError(
            f"replay of {self._precision!r}: {'; '.join(c for c in counts if c)}. Replay the suites the file "
            f"recorded, or record these cases. Missing or ambiguous: {listed}."
        )

    def check_cases(self, suite: str, case_ids: Sequence[str]) -> None:
        """Called by the accuracy pass before generating: every case must be recorded for
        this precision. Raises :class:`ModelError` listing the missing ids."""
        recorded = {r.case_id for r in self._recording.rows if r.precision == self._precision and r.suite == suite}
        missing = [cid for cid in case_ids if cid not in recorded]
        if missing:
            listed = ", ".join(missing[:_LISTED]) + (f", ... ({len(missing) - _LISTED} more)" if len(missing) > _LISTED else "")
            raise ModelError(
                f"replay of {self._precision!r}: {len(missing)} of {len(case_ids)} case(s) of suite {suite!r} have no "
                f"recorded completion in {self._recording.path}. Replay the cases the file recorded (e.g. the same "
                f"--limit), or record these. Missing ids: {listed}."
            )

    def generate(self, prompts: Sequence[Prompt], settings: GenerationSettings) -> list[Generation]:
        texts = [p.text for p in prompts]
        if any(t in self._unresolved for t in texts):
            raise self._unresolved_error()
        out = []
        for prompt in texts:
            rows = self._index.by_prompt.get(prompt)
            if not rows:
                raise ModelError(
                    f"replay: the prompt {_short(prompt)} has no recorded completion in {self._recording.path} "
                    f"(precision {self._precision!r}); prompts must come from this model's prepare()."
                )
            out.append(Generation(text=rows[0].completion, output_tokens=rows[0].output_tokens))
        return out

    def generate_timed(self, prompt: Prompt, settings: GenerationSettings) -> TimedGeneration:
        raise ModelError(
            "replay: latency not measured, since recorded completions are replayed and nothing is generated. "
            "Pass --latency-samples 0 to skip the timed pass."
        )

    def weights_bytes(self) -> int | None:
        return None

    def close(self) -> None:
        pass


class ReplaySource:
    """Model spec ``replay:PATH[#PRECISION]`` (see the module docstring)."""

    def __init__(self, spec: str) -> None:
        path, self.selector = parse_replay_spec(spec)
        self.spec = spec
        self.recording = read_recording(path)
        recorded = self.recording.precisions
        if self.selector is not None and self.selector not in recorded:
            raise ModelError(
                f"Model {spec!r}: {self.recording.path} holds no completions at precision {self.selector!r}; "
                f"it has {', '.join(recorded)}."
            )
        model = _recorded_model_name(self.recording)
        self.card = ModelCard(
            spec=spec,
            name=f"replay of {model}" if model else "replay",
            source_precision=f"recorded completions ({', '.join(recorded)})",
            parameters=None,
            architecture=None,
            path=str(self.recording.path.resolve()),
            notes=(
                f"Replay of {self.recording.path} (sha256 {self.recording.sha256}): recorded completions "
                "re-scored, nothing generated; latency not measured, memory is the replaying process's."
            ),
        )

    def recorded_precision(self, label: str) -> str:
        """Which recorded precision a sweep precision named ``label`` replays."""
        recorded = self.recording.precisions
        if self.selector is not None:
            if label not in (_AS_IS, self.selector):
                raise ModelError(
                    f"{self.spec} replays the {self.selector} completions; label its cells --precisions as-is "
                    f"(or {self.selector}), not {label}."
                )
            return self.selector
        if label in recorded:
            return label
        if label == _AS_IS and len(recorded) == 1:
            return recorded[0]
        raise ModelError(
            f"{self.recording.path} holds completions at {', '.join(recorded)}, none of them {label!r}: pick one "
            f"with --model {self.spec}#PRECISION --precisions as-is, or name a recorded one in --precisions."
        )

    def load(self, precision: str, device: str, calibration: Any = None) -> LoadedModel:
        recorded = self.recorded_precision(precision)
        applied = AppliedPrecision(
            precision=precision,
            replay=ReplayUsed(path=str(self.recording.path), sha256=self.recording.sha256, recorded_precision=recorded),
        )
        model = ReplayTextModel(self.recording, recorded, device)
        return LoadedModel(model=model, load_s=0.0, quantize_s=0.0, applied=applied)
