"""Scripted responders for the fake model."""

import re
from pathlib import Path

MINI = Path(__file__).parent / "data" / "suites" / "mini"


def sums(prompt: str) -> tuple[int, int]:
    a, b = map(int, re.findall(r"What is (\d+) \+ (\d+)\?", prompt)[0])
    return a, b


def right_except_int4_on_odd(prompt: str, precision: str) -> str:
    """Correct sums, except int4 gets every case with an odd first operand wrong."""
    a, b = sums(prompt)
    wrong = precision == "int4" and a % 2 == 1
    return f"The answer is {a + b + (1 if wrong else 0)}."
