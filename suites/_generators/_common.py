"""What every case generator shares: seeded, de-duplicated cases per difficulty, written as JSONL."""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PER_LEVEL = 22
LEVELS = ("easy", "medium", "hard")


def build_cases(
    rng: random.Random,
    prefix: str,
    makers: Sequence[Callable[[random.Random], Any]],
    to_case: Callable[[str, str, Any], dict[str, Any]],
    key: Callable[[Any], Any],
    per_level: int = PER_LEVEL,
    max_tries: int = 10_000,
) -> list[str]:
    """``per_level`` cases from each maker (easy, medium, hard), skipping repeats of ``key``.

    After ``max_tries`` draws for one level a repeat is accepted rather than looping forever.
    """
    lines: list[str] = []
    seen: set[Any] = set()
    for level, make in zip(LEVELS, makers):
        count = tries = 0
        while count < per_level:
            tries += 1
            item = make(rng)
            if key(item) in seen and tries < max_tries:
                continue
            seen.add(key(item))
            count += 1
            case = to_case(f"{prefix}-{len(lines) + 1:03d}", level, item)
            lines.append(json.dumps(case, ensure_ascii=False))
    return lines


def run(
    doc: str,
    out: Path,
    default_seed: int,
    prefix: str,
    makers: Sequence[Callable[[random.Random], Any]],
    to_case: Callable[[str, str, Any], dict[str, Any]],
    key: Callable[[Any], Any] = lambda item: item[0],
) -> None:
    """The generator scripts' ``main``: parse ``--seed``, build, write ``out``."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--seed", type=int, default=default_seed)
    args = parser.parse_args()
    lines = build_cases(random.Random(args.seed), prefix, makers, to_case, key)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} cases to {out}")
