"""Calibration sets: text for the precisions that calibrate (GPTQ, static int8 activations).

A set is a ``calibration.jsonl`` file, one ``{"text": ...}`` object per line,
usually in ``calibration/<name>/`` beside a README on its provenance.
:func:`load_calibration` validates every line itself (so an error names
file:line), reads the file with ``datasets``, and draws a seeded sample; the
result records the file's hash and the sample's hash, so a report (and a cache
of calibrated weights) can say exactly which texts were used.
:func:`check_lengths` refuses a sample whose texts are mostly shorter than the
sequence length the quantizer will cut them to.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qeval._paths import is_dir as _is_dir
from qeval._paths import is_file as _is_file
from qeval.errors import BackendUnavailable, QevalError
from qeval.registry import Registry

CALIBRATION_FILE = "calibration.jsonl"
CALIBRATION_ROOT = Path(__file__).resolve().parents[2] / "calibration"
"""The repository's ``calibration/`` folder (found through the source tree; absent in a
plain wheel install, where sets are passed by path)."""
INSTALL_HINT = "pip install 'qeval[calibration]'  (or: pip install datasets==5.2.0)"


class CalibrationError(QevalError, ValueError):
    """A calibration set cannot be found, read or used; the message names file:line and the fix."""


@dataclass(frozen=True)
class CalibrationSet:
    """A seeded sample of a calibration set. Build with :func:`load_calibration`."""

    name: str
    """The set's name: its folder under ``calibration/``, or the file's stem."""
    path: Path
    """The ``.jsonl`` file the texts came from."""
    texts: tuple[str, ...]
    """The sampled texts, in file order."""
    content_hash: str
    """sha256 of the file's bytes."""
    sample_hash: str
    """sha256 of the sampled texts (see :func:`sample_digest`): changes with seed and sample size."""
    samples: int
    """How many texts were sampled."""
    seed: int
    """Seed of the ``random.Random`` that chose them."""
    available: int
    """How many texts the file holds."""

    def record(self) -> dict[str, Any]:
        """What a report records about the set: everything except the texts (JSON-ready)."""
        return {
            "name": self.name,
            "path": str(self.path),
            "content_hash": self.content_hash,
            "sample_hash": self.sample_hash,
            "samples": self.samples,
            "seed": self.seed,
            "available": self.available,
        }


# --- finding a set ------------------------------------------------------------------------------


def available_sets(root: str | Path = CALIBRATION_ROOT) -> list[str]:
    """Names of the sets under ``root``: sub-folders holding a ``calibration.jsonl``, sorted."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CALIBRATION_FILE).is_file())


def resolve_calibration(name_or_path: str | Path, root: str | Path = CALIBRATION_ROOT) -> Path:
    """The ``.jsonl`` file meant by ``name_or_path``.

    Accepts a set name under ``root`` (``"generic"``), a folder containing
    ``calibration.jsonl``, or a path to a ``.jsonl`` file. A bare name that is
    neither raises :class:`CalibrationError` with a did-you-mean and the list of sets.
    """
    root = Path(root)
    text = str(name_or_path)
    looks_like_name = bool(
        isinstance(name_or_path, str) and text.strip() and text not in (".", "..")
        and "/" not in text and "\\" not in text and not text.endswith(".jsonl")
    )
    if looks_like_name and _is_file(root / text / CALIBRATION_FILE):
        return root / text / CALIBRATION_FILE
    path = Path(name_or_path)
    if _is_dir(path):
        if (path / CALIBRATION_FILE).is_file():
            return path / CALIBRATION_FILE
        raise CalibrationError(
            f"{path}: this folder has no {CALIBRATION_FILE}. Put one {{\"text\": ...}} object per line in "
            f"{path / CALIBRATION_FILE}, or pass a set name ({_names_hint(root)})."
        )
    if _is_file(path):
        if path.suffix != ".jsonl":
            raise CalibrationError(f"{path}: a calibration set is a .jsonl file (one {{\"text\": ...}} per line); got a {path.suffix or 'suffix-less'} file. Rename it or pass the .jsonl file.")
        return path
    if looks_like_name:
        registry: Registry[Path] = Registry("calibration set")
        for name in available_sets(root):
            registry.register(name, root / name)
        if not registry.names():
            raise CalibrationError(
                f"Unknown calibration set {text!r}: no sets found under {root} (is qeval installed without its "
                "source tree?). Pass a path to a folder holding calibration.jsonl, or to a .jsonl file."
            )
        raise CalibrationError(f"{registry.unknown_message(text)} Pass one of those names, or a path to a folder or .jsonl file.")
    raise CalibrationError(f"{path}: no such file or folder. Pass a set name ({_names_hint(root)}) or an existing path.")



def _names_hint(root: Path) -> str:
    names = available_sets(root)
    return "one of " + ", ".join(names) if names else f"none found under {root}"


# --- reading and sampling -----------------------------------------------------------------------


def load_calibration(
    name_or_path: str | Path, samples: int = 128, seed: int = 0, root: str | Path = CALIBRATION_ROOT
) -> CalibrationSet:
    """Load a calibration set and sample ``samples`` texts without replacement.

    The sample is drawn with ``random.Random(seed)`` and kept in file order, so
    the same file, ``samples`` and ``seed`` always give the same texts. Raises
    :class:`CalibrationError` for a missing set, a malformed line (naming
    file:line), an empty file, or more samples than the file holds; and
    :class:`~qeval.errors.BackendUnavailable` when ``datasets`` is not installed.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise CalibrationError(f"samples={samples!r}: the number of calibration samples must be a whole number >= 1; pass one such as 128 (GPTQ's usual).")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise CalibrationError(f"seed={seed!r}: the calibration seed must be an integer; pass one such as 0.")
    path = resolve_calibration(name_or_path, root)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read the file ({exc.strerror or exc}). Check that it exists and is readable.") from None
    texts = parse_lines(path, data)
    if samples > len(texts):
        raise CalibrationError(
            f"{path}: asked for {samples} calibration samples but the set has only {len(texts)} texts. "
            f"Ask for at most {len(texts)}, or add texts to the file."
        )
    loaded = _read_with_datasets(path)
    if loaded != texts:  # should not happen for a file that passed parse_lines; refuse rather than guess
        raise CalibrationError(
            f"{path}: the datasets library read {len(loaded)} texts that differ from the {len(texts)} lines qeval validated. "
            "Re-save the file as plain UTF-8 JSON Lines (one {\"text\": ...} per line)."
        )
    chosen = sorted(random.Random(seed).sample(range(len(texts)), samples))
    picked = tuple(texts[i] for i in chosen)
    return CalibrationSet(
        name=path.parent.name if path.name == CALIBRATION_FILE else path.stem,
        path=path,
        texts=picked,
        content_hash=hashlib.sha256(data).hexdigest(),
        sample_hash=sample_digest(picked),
        samples=samples,
        seed=seed,
        available=len(texts),
    )


def sample_digest(texts: Sequence[str]) -> str:
    """sha256 of the texts as one JSON array (UTF-8): order and boundaries both count."""
    return hashlib.sha256(json.dumps(list(texts), ensure_ascii=False).encode("utf-8")).hexdigest()


def parse_lines(path: Path, data: bytes) -> list[str]:
    """The texts of a calibration JSONL file's bytes, validated line by line.

    Blank lines are skipped. Each other line must be a JSON object whose only key
    is ``"text"``, a non-empty string. Errors name ``path:line`` and say how to fix it.
    """
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = data[: exc.start].count(b"\n") + 1
        raise CalibrationError(f"{path}:{bad_line}: not valid UTF-8 (byte {data[exc.start]:#04x}). Save the file as UTF-8.") from None
    content = content.removeprefix("\ufeff")  # a byte-order mark is harmless; datasets skips it too
    texts: list[str] = []
    # Split on "\n" only, as JSON Lines does: str.splitlines() would also split on U+2028 and
    # friends, which may stand unescaped inside a JSON string.
    for lineno, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            raw = json.loads(line, object_pairs_hook=_no_duplicate_keys)
        except _DuplicateKey as exc:
            raise CalibrationError(f"{where}: key {exc.args[0]!r} appears twice in one object. Keep one.") from None
        except json.JSONDecodeError as exc:
            raise CalibrationError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno}). Fix it: each line must be one JSON object, {{\"text\": \"...\"}}.") from None
        except (ValueError, RecursionError) as exc:  # e.g. a 5,000-digit number, or [[[[... nested too deep
            raise CalibrationError(f"{where}: unreadable JSON ({type(exc).__name__}: {exc}). Fix it: each line must be one flat object, {{\"text\": \"...\"}}.") from None
        if not isinstance(raw, dict):
            raise CalibrationError(f"{where}: expected a JSON object {{\"text\": \"...\"}}, got a JSON {_json_kind(raw)}. Write one such object per line.")
        if "text" not in raw:
            raise CalibrationError(f"{where}: key 'text' is missing; add it. Each line must be {{\"text\": \"...\"}}.")
        extra = sorted(k for k in raw if k != "text")
        if extra:
            raise CalibrationError(f"{where}: unknown key(s) {', '.join(map(repr, extra))}. A line holds only {{\"text\": \"...\"}}; remove the others.")
        text = raw["text"]
        if not isinstance(text, str):
            raise CalibrationError(f"{where}: key 'text' must be a string, got a JSON {_json_kind(text)}. Quote the text.")
        if not text.strip():
            raise CalibrationError(f"{where}: key 'text' is empty. Remove the line or give it some text.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise CalibrationError(f"{where}: key 'text' holds an unpaired surrogate escape (\\ud800-\\udfff). Fix or remove that escape.") from None
        texts.append(text)
    if not texts:
        raise CalibrationError(f"{path}: the calibration set is empty. Add one {{\"text\": \"...\"}} object per line.")
    return texts


class _DuplicateKey(Exception):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads would keep the last of two equal keys; pyarrow (inside datasets) rejects them
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen.add(key)
    return dict(pairs)


def _json_kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _read_with_datasets(path: Path) -> list[str]:
    """The ``text`` column of ``path`` as read by ``datasets`` (offline, throwaway cache, no progress bars)."""
    try:
        import datasets
    except ImportError:
        raise BackendUnavailable(f"reading calibration sets needs the datasets library: {INSTALL_HINT}") from None
    features = datasets.Features({"text": datasets.Value("string")})
    with tempfile.TemporaryDirectory(prefix="qeval-calibration-") as cache, _offline_and_quiet(datasets):
        try:
            table = datasets.load_dataset(
                "json", data_files=str(path), split="train", features=features, cache_dir=cache, keep_in_memory=True
            )
            return [str(t) for t in table["text"]]
        except Exception as exc:  # noqa: BLE001 -- a third-party reader's failure becomes a user-facing error
            root_cause: BaseException = exc
            while root_cause.__cause__ is not None:
                root_cause = root_cause.__cause__
            raise CalibrationError(
                f"{path}: the datasets library could not read this file ({type(root_cause).__name__}: {root_cause}). "
                "Re-save it as plain UTF-8 JSON Lines, one {\"text\": \"...\"} object per line."
            ) from None


@contextlib.contextmanager
def _offline_and_quiet(datasets: Any) -> Iterator[None]:
    """Never reach for the Hub (the file is local), hide progress bars and log lines (a failure
    becomes a CalibrationError carrying its cause), then restore all three."""
    config, logging = datasets.config, datasets.utils.logging
    offline, verbosity = config.HF_HUB_OFFLINE, logging.get_verbosity()
    bars = datasets.is_progress_bar_enabled()
    config.HF_HUB_OFFLINE = True
    datasets.disable_progress_bars()
    logging.set_verbosity(logging.CRITICAL)
    try:
        yield
    finally:
        config.HF_HUB_OFFLINE = offline
        logging.set_verbosity(verbosity)
        if bars:
            datasets.enable_progress_bars()


# --- lengths ------------------------------------------------------------------------------------


def check_lengths(texts: Sequence[str] | CalibrationSet, tokenizer: Any, seq_len: int) -> None:
    """Refuse calibration texts that are mostly shorter than ``seq_len`` tokens.

    ``tokenizer`` is HF-like: ``tokenizer(text)["input_ids"]``, or anything with
    ``.encode(text)``. Raises :class:`CalibrationError` when more than half of the
    texts are shorter than ``seq_len`` (a quantizer would calibrate mostly on
    padding or on truncated statistics), naming how many, the shortest, and a
    ``seq_len`` that would pass.
    """
    source = f"{texts.path}: " if isinstance(texts, CalibrationSet) else ""
    items = list(texts.texts if isinstance(texts, CalibrationSet) else texts)
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise CalibrationError(f"seq_len={seq_len!r}: the calibration sequence length must be a whole number >= 1; pass one such as 256.")
    if not items:
        raise CalibrationError(f"{source}no calibration texts to check. Load a set with load_calibration() first.")
    lengths = sorted(_token_count(tokenizer, t) for t in items)
    short = sum(n < seq_len for n in lengths)
    if 2 * short > len(lengths):
        median = lengths[(len(lengths) - 1) // 2]  # at least half the texts are this long or longer
        raise CalibrationError(
            f"{source}{short} of {len(lengths)} calibration texts are shorter than seq_len={seq_len} tokens "
            f"(shortest: {lengths[0]} tokens, median: {median}). Use seq_len <= {max(median, 1)}, "
            "or a calibration set with longer texts."
        )


def check_token_budget(
    texts: Sequence[str] | CalibrationSet, tokenizer: Any, *, min_text_tokens: int, min_total_tokens: int, why: str
) -> dict[str, int]:
    """Count the tokens a quantizer will actually see and refuse a sample that gives too few.

    Texts shorter than ``min_text_tokens`` are dropped by the quantizer (gptqmodel
    drops those under 10 tokens without saying so); the rest must add up to
    ``min_total_tokens`` (``why`` says what that bound protects). Returns the
    counts for the report; raises :class:`CalibrationError` naming the set, what
    it gives, and how many samples would do.
    """
    source = f"{texts.path}: " if isinstance(texts, CalibrationSet) else ""
    items = list(texts.texts if isinstance(texts, CalibrationSet) else texts)
    lengths = [_token_count(tokenizer, t) for t in items]
    used = [n for n in lengths if n >= min_text_tokens]
    total = sum(used)
    if not used:
        raise CalibrationError(
            f"{source}all {len(items)} calibration texts are shorter than {min_text_tokens} tokens, which the "
            "quantizer drops. Use a set with longer texts (a sentence or more each)."
        )
    if total < min_total_tokens:
        per_text = total / len(used)
        need = len(items) * min_total_tokens / max(total, 1)
        raise CalibrationError(
            f"{source}{len(used)} calibration texts give {total} tokens (about {per_text:.0f} each); at least "
            f"{min_total_tokens} are needed ({why}). Ask for about {int(need) + 1} samples with "
            "--calibration-samples, or use a set with longer texts."
        )
    return {"texts_used": len(used), "texts_dropped_short": len(items) - len(used), "tokens": total}


def _token_count(tokenizer: Any, text: str) -> int:
    if callable(tokenizer):
        encoded = tokenizer(text)
        ids = encoded["input_ids"] if isinstance(encoded, dict) or hasattr(encoded, "keys") else encoded
    elif hasattr(tokenizer, "encode"):
        ids = tokenizer.encode(text)
    else:
        raise CalibrationError(
            f"tokenizer {type(tokenizer).__name__} cannot tokenize: pass an HF tokenizer "
            "(callable, returning input_ids) or an object with .encode(text)."
        )
    if ids and isinstance(ids[0], (list, tuple)):  # a batch of one
        ids = ids[0]
    return len(ids)


__all__ = [
    "CALIBRATION_FILE",
    "CALIBRATION_ROOT",
    "CalibrationError",
    "CalibrationSet",
    "available_sets",
    "check_lengths",
    "check_token_budget",
    "load_calibration",
    "parse_lines",
    "resolve_calibration",
    "sample_digest",
]
