"""What every calibration-set generator shares: seeded templating, sample assembly, JSONL output.

A sample is built from *parts* (paragraphs, clinical notes, functions, worked
problems) drawn from one seeded :class:`random.Random`, joined until it is long
enough. Nothing here iterates a ``set`` or reads the clock, so one seed gives the
same bytes on every run and machine.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import string
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
"""The repository's ``calibration/`` folder."""
FILE_NAME = "calibration.jsonl"
SAMPLES = 320
MIN_CHARS = 1400
MAX_CHARS = 2500

Slot = Sequence[str] | Callable[[random.Random], str]
"""A template slot's filler: a word bank to choose from, or a function of the rng."""

_FORMATTER = string.Formatter()


def fill(rng: random.Random, template: str, banks: Mapping[str, Slot], drawn: dict[str, str] | None = None) -> str:
    """``template`` with every ``{slot}`` filled from ``drawn``, else drawn from ``banks``.

    Values drawn are stored in ``drawn``, so a slot keeps one value across all the
    templates that share the dict (one paragraph). A bank value may itself hold
    slots. A slot whose name starts with a capital letter uses the lower-case slot
    and capitalises it (``{Town}``).
    """
    drawn = {} if drawn is None else drawn
    values: dict[str, str] = {}
    for _, name, _, _ in _FORMATTER.parse(template):
        if name is None or name in values:
            continue
        key = name[0].lower() + name[1:]
        if key not in drawn:
            bank = banks[key]
            value = str(bank(rng) if callable(bank) else rng.choice(bank))
            drawn[key] = fill(rng, value, banks, drawn) if "{" in value else value  # banks may nest slots
        value = drawn[key]
        values[name] = value[0].upper() + value[1:] if name[0].isupper() else value
    return template.format(**values)


def paragraph(
    rng: random.Random,
    banks: Mapping[str, Slot],
    openings: Sequence[str],
    middles: Sequence[str],
    closings: Sequence[str],
    middle_count: tuple[int, int] = (3, 5),
    keep_order: bool = False,
    **fixed: Any,
) -> str:
    """One opening, a few distinct middle sentences, one closing.

    The middle sentences come in random order, or in their listed order with
    ``keep_order`` (steps of a recipe). ``fixed`` gives slot values up front;
    every other slot is drawn once per paragraph.
    """
    count = min(rng.randint(*middle_count), len(middles))
    picked = rng.sample(range(len(middles)), count)
    if keep_order:
        picked.sort()
    chosen = [rng.choice(openings), *(middles[i] for i in picked), rng.choice(closings)]
    drawn = {k: str(v) for k, v in fixed.items()}
    return " ".join(fill(rng, t, banks, drawn) for t in chosen)


def build_samples(
    rng: random.Random,
    make_part: Callable[[random.Random], str],
    count: int = SAMPLES,
    join: str = "\n\n",
    min_chars: int = MIN_CHARS,
    max_chars: int = MAX_CHARS,
    finish: Callable[[random.Random, list[str]], str] | None = None,
    key: Callable[[str], object] = lambda part: part,
    max_tries: int = 100_000,
) -> list[str]:
    """``count`` distinct samples, each ``min_chars``..``max_chars`` characters long.

    Parts are added until the sample reaches ``min_chars`` (a part whose ``key``
    equals that of one already in the sample is skipped); a sample that overshoots ``max_chars`` or
    repeats an earlier sample is drawn again. ``finish`` turns the list of parts
    into the text (default: ``join.join(parts)``).
    """
    samples: list[str] = []
    seen: set[str] = set()
    tries = 0
    while len(samples) < count:
        tries += 1
        if tries > max_tries:
            raise RuntimeError(f"gave up after {max_tries} draws with {len(samples)} of {count} samples")
        parts: list[str] = []
        keys: list[object] = []
        text = ""
        while len(text) < min_chars:
            part = make_part(rng)
            if key(part) in keys:
                continue
            parts.append(part)
            keys.append(key(part))
            text = finish(rng, parts) if finish else join.join(parts)
        if len(text) > max_chars or text in seen:
            continue
        seen.add(text)
        samples.append(text)
    return samples


def write_set(out_dir: Path, texts: Sequence[str]) -> Path:
    """Write ``out_dir/calibration.jsonl``: one ``{"text": ...}`` per line, UTF-8, ``\\n`` endings."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FILE_NAME
    lines = [json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts]
    path.write_bytes("".join(lines).encode("utf-8"))
    return path


def length_stats(texts: Sequence[str]) -> dict[str, float]:
    """Sample count and length statistics in characters (the numbers each README quotes)."""
    lengths = [len(t) for t in texts]
    return {
        "samples": len(lengths),
        "min_chars": min(lengths),
        "median_chars": statistics.median(lengths),
        "mean_chars": round(statistics.fmean(lengths), 1),
        "max_chars": max(lengths),
        "total_chars": sum(lengths),
    }


def stats_line(texts: Sequence[str]) -> str:
    """The statistics sentence each set's README quotes verbatim (a test keeps them in step)."""
    s = length_stats(texts)
    return (f"{s['samples']} samples; characters per sample: min {s['min_chars']:,}, median {s['median_chars']:,g}, "
            f"mean {s['mean_chars']:,}, max {s['max_chars']:,}; {s['total_chars']:,} characters in all.")


def main(doc: str | None, name: str, generate: Callable[[Path, int], Path], default_seed: int) -> None:
    """A generator module's command line: ``--seed`` and ``--out``, then print the statistics."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--seed", type=int, default=default_seed, help=f"default {default_seed}, the seed of the shipped file")
    parser.add_argument("--out", type=Path, default=ROOT / name, help="folder to write calibration.jsonl into")
    args = parser.parse_args()
    path = generate(args.out, args.seed)
    texts = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").split("\n") if line]
    print(f"wrote {path}: {stats_line(texts)}")
