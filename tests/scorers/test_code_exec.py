from __future__ import annotations

import pytest

from qeval.scorers import get_scorer
from qeval.scorers._code_exec import build_program, extract_code

EXP = {"entry_point": "add", "tests": "assert add(1, 2) == 3\nassert add(-1, 1) == 0"}


@pytest.fixture(scope="module")
def scorer():
    return get_scorer("code_exec", {"timeout_s": 2})


def test_extract_code_from_fence_and_prose() -> None:
    text = "Sure!\n```python\ndef add(a, b):\n    return a + b\n```\nThis adds."
    assert extract_code(text, "add").strip() == "def add(a, b):\n    return a + b"
    raw = "Here you go:\ndef add(a, b):\n    return a + b\nIt returns the sum."
    assert extract_code(raw, "add").strip() == "def add(a, b):\n    return a + b"


def test_correct_passes(scorer) -> None:
    sc = scorer.score("```python\ndef add(a, b):\n    return a + b\n```", EXP)
    assert sc.passed and sc.value == 1.0 and sc.details["tests_passed"] == 2


def test_wrong_answer_fails(scorer) -> None:
    sc = scorer.score("def add(a, b):\n    return a + b if a > 0 else 99", EXP)
    assert not sc.passed and sc.value == 0.5 and "AssertionError" in (sc.reason or "")


def test_syntax_error(scorer) -> None:
    sc = scorer.score("def add(a, b) return a + b", EXP)
    assert not sc.passed and sc.details["status"] == "syntax_error" and "syntax error" in (sc.reason or "")


def test_missing_function(scorer) -> None:
    sc = scorer.score("I don't know how.", EXP)
    assert not sc.passed and sc.details["status"] == "missing_function"


def test_infinite_loop_times_out(scorer) -> None:
    sc = scorer.score("def add(a, b):\n    while True:\n        pass", EXP)
    assert not sc.passed and sc.details["status"] == "timeout" and "timeout" in (sc.reason or "")


def test_huge_allocation_fails_cleanly(scorer) -> None:
    sc = scorer.score("def add(a, b):\n    x = bytearray(4 * 1024 ** 3)\n    return a + b", EXP)
    assert not sc.passed and "MemoryError" in (sc.reason or "")


def test_error_at_definition(scorer) -> None:
    sc = scorer.score("import nonexistent_module_xyz\ndef add(a, b):\n    return a + b", EXP)
    assert not sc.passed and "ModuleNotFoundError" in (sc.reason or "")


def test_aggregate(scorer) -> None:
    scores = [scorer.score("def add(a, b):\n    return a + b", EXP), scorer.score("def add(a, b) x", EXP)]
    agg = scorer.aggregate(scores)
    assert agg["syntax_error_rate"].value == 0.5 and agg["tests_passed"].value == 0.5


PREFIXED = {"entry_point": "inc", "prefix": "import math\n\ndef inc(x):\n    \"\"\"x + 1\"\"\"\n",
            "setup": "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(-1) == 0\n",
            "tests": "check(inc)"}


def test_build_program_continues_or_follows_the_prefix() -> None:
    prefix = PREFIXED["prefix"]
    assert build_program("    return x + 1\nThanks!", "inc", prefix) == prefix + "    return x + 1\n"
    rewrite = "```python\ndef inc(x):\n    return math.floor(x) + 1\n```"
    assert build_program(rewrite, "inc", prefix) == prefix + "\ndef inc(x):\n    return math.floor(x) + 1\n"
    assert build_program("def inc(x): return x + 1", "inc") == "def inc(x): return x + 1\n"  # no prefix: as before


def test_prefix_and_setup(scorer) -> None:
    assert scorer.score("    return x + 1\n", PREFIXED).passed
    assert scorer.score("def inc(x):\n    return math.floor(x) + 1", PREFIXED).passed  # the prefix's import is there
    sc = scorer.score("    return x\n", PREFIXED)
    assert not sc.passed and sc.reason.endswith("assert candidate(1) == 2")  # the failing line of check()
    sc = scorer.score("no idea", PREFIXED)
    assert not sc.passed and sc.details["status"] == "syntax_error"


def test_setup_errors_are_reported_as_errors(scorer) -> None:
    exp = {"entry_point": "f", "setup": "raise RuntimeError('setup broke')", "tests": "assert f() == 1"}
    sc = scorer.score("def f():\n    return 1", exp)
    assert not sc.passed and sc.details["status"] == "error" and "setup broke" in sc.reason
