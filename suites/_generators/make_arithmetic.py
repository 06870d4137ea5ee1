"""Write suites/arithmetic/cases.jsonl (seeded; rerun to reproduce byte-for-byte).

Usage: .venv/bin/python suites/_generators/make_arithmetic.py [--seed 1234]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "arithmetic" / "cases.jsonl"
PER_LEVEL = 22

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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    lines, seen = [], set()
    for level, make in (("easy", easy), ("medium", medium), ("hard", hard)):
        count = 0
        while count < PER_LEVEL:
            question, answer = make(rng)
            if question in seen:
                continue
            seen.add(question)
            count += 1
            case = {"id": f"arith-{len(lines) + 1:03d}", "inputs": {"question": question},
                    "expected": answer, "tags": {"difficulty": level}}
            lines.append(json.dumps(case, ensure_ascii=False))
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} cases to {OUT}")


if __name__ == "__main__":
    main()
