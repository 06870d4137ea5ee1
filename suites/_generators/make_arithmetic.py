"""Write suites/arithmetic/cases.jsonl (seeded; rerun to reproduce byte-for-byte).

Usage: .venv/bin/python suites/_generators/make_arithmetic.py [--seed 1234]
"""

from __future__ import annotations

import random
from pathlib import Path

from _common import run

OUT = Path(__file__).resolve().parents[1] / "arithmetic" / "cases.jsonl"

NAMES = ["Tom", "Ana", "Li", "Sara", "Omar", "Mia", "Ravi", "Eva", "Ken", "Zoe"]
THINGS = ["apples", "pencils", "stickers", "books", "marbles", "cookies", "stamps", "shells"]


def easy(rng: random.Random) -> tuple[str, int]:
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    if rng.random() < 0.6:
        return f"What is {a} + {b}?", a + b
    a, b = max(a, b), min(a, b)
    return f"What is {a} - {b}?", a - b


def medium(rng: random.Random) -> tuple[str, int]:
    kind = rng.choice(["add2", "sub2", "mul1"])
    if kind == "add2":
        a, b = rng.randint(10, 60), rng.randint(10, 39)
        return f"What is {a} + {b}?", a + b
    if kind == "sub2":
        a, b = rng.randint(30, 99), rng.randint(10, 29)
        return f"What is {a} - {b}?", a - b
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    return f"What is {a} * {b}?", a * b


def hard(rng: random.Random) -> tuple[str, int]:
    kind = rng.choice(["story", "mul2", "three"])
    if kind == "story":
        name, thing = rng.choice(NAMES), rng.choice(THINGS)
        a, b = rng.randint(5, 20), rng.randint(2, 12)
        c = rng.randint(1, a + b - 1)
        q = f"{name} has {a} {thing}, gets {b} more, then gives away {c}. How many {thing} does {name} have now?"
        return q, a + b - c
    if kind == "mul2":
        a, b = rng.randint(11, 30), rng.randint(3, 9)
        return f"What is {a} * {b}?", a * b
    a, b, c = rng.randint(10, 50), rng.randint(10, 50), rng.randint(1, 9)
    return f"What is {a} + {b} - {c}?", a + b - c


def main() -> None:
    run(__doc__, OUT, 1234, "arith", (easy, medium, hard),
        lambda cid, level, item: {"id": cid, "inputs": {"question": item[0]},
                                  "expected": item[1], "tags": {"difficulty": level}})



if __name__ == "__main__":
    main()
