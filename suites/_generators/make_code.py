"""Write suites/code/cases.jsonl: small Python functions from a one-line spec, with unit tests.

Each case's ``expected`` holds ``entry_point``, ``tests`` (asserts) and a
``reference`` solution (ignored by the scorer; the test suite checks that it
passes). Families are parameterised (e.g. "add N") and drawn with a fixed seed;
rerun to reproduce byte-for-byte. Usage: .venv/bin/python suites/_generators/make_code.py [--seed 99]
"""

from __future__ import annotations

import random
from pathlib import Path

from _common import run

OUT = Path(__file__).resolve().parents[1] / "code" / "cases.jsonl"

Case = tuple[str, str, str, str, str]  # entry_point, signature, spec, reference body, tests


def _tests(entry: str, pairs: list[tuple[tuple, object]]) -> str:
    return "\n".join(f"assert {entry}({', '.join(map(repr, args))}) == {out!r}" for args, out in pairs)


def easy(rng: random.Random) -> Case:
    kind = rng.choice(["add", "mul", "sub", "square", "double_str", "neg"])
    n = rng.randint(2, 12)
    xs = [0, 1, 5, -3, 10]
    if kind == "add":
        e = f"add_{n}"
        return e, f"def {e}(x):", f"returns x plus {n}", f"return x + {n}", _tests(e, [((x,), x + n) for x in xs])
    if kind == "mul":
        e = f"times_{n}"
        return e, f"def {e}(x):", f"returns x multiplied by {n}", f"return x * {n}", _tests(e, [((x,), x * n) for x in xs])
    if kind == "sub":
        e = f"minus_{n}"
        return e, f"def {e}(x):", f"returns x minus {n}", f"return x - {n}", _tests(e, [((x,), x - n) for x in xs])
    if kind == "square":
        e = rng.choice(["square", "sq", "squared"])
        return e, f"def {e}(x):", "returns x squared (x * x)", "return x * x", _tests(e, [((x,), x * x) for x in xs])
    if kind == "neg":
        e = rng.choice(["negate", "neg", "opposite"])
        return e, f"def {e}(x):", "returns -x", "return -x", _tests(e, [((x,), -x) for x in xs])
    e = rng.choice(["add", "plus", "sum_two"])
    pairs = [((1, 2), 3), ((0, 0), 0), ((-4, 9), 5), ((n, n), 2 * n)]
    return e, f"def {e}(a, b):", "returns a + b", "return a + b", _tests(e, pairs)


def medium(rng: random.Random) -> Case:
    kind = rng.choice(["upper", "length", "is_even", "first", "maxi", "repeat", "last"])
    if kind == "upper":
        e = rng.choice(["to_upper", "shout", "upper_case"])
        ws = ["hi", "Hello", "abc1", ""]
        return e, f"def {e}(s):", "returns the string s in upper case", "return s.upper()", _tests(e, [((w,), w.upper()) for w in ws])
    if kind == "length":
        e = rng.choice(["count_items", "size", "length"])
        ls = [[], [1], [1, 2, 3], ["a", "b"]]
        return e, f"def {e}(items):", "returns the number of elements in the list items", "return len(items)", _tests(e, [((v,), len(v)) for v in ls])
    if kind == "is_even":
        e = rng.choice(["is_even", "even"])
        xs = [0, 1, 2, 7, 10, -4]
        return e, f"def {e}(n):", "returns True if n is even, else False", "return n % 2 == 0", _tests(e, [((x,), x % 2 == 0) for x in xs])
    if kind == "first":
        e = rng.choice(["first", "head", "first_item"])
        ls = [[3, 4], ["x"], [0, 0, 1]]
        return e, f"def {e}(items):", "returns the first element of the list items", "return items[0]", _tests(e, [((v,), v[0]) for v in ls])
    if kind == "last":
        e = rng.choice(["last", "tail_item", "last_item"])
        ls = [[3, 4], ["x"], [0, 0, 1]]
        return e, f"def {e}(items):", "returns the last element of the list items", "return items[-1]", _tests(e, [((v,), v[-1]) for v in ls])
    if kind == "maxi":
        e = rng.choice(["biggest", "largest", "max_of"])
        ls = [[1, 5, 3], [-2, -7], [4]]
        return e, f"def {e}(nums):", "returns the largest number in the list nums", "return max(nums)", _tests(e, [((v,), max(v)) for v in ls])
    n = rng.randint(2, 4)
    e = f"repeat_{n}"
    ws = ["ab", "x", ""]
    return e, f"def {e}(s):", f"returns the string s repeated {n} times", f"return s * {n}", _tests(e, [((w,), w * n) for w in ws])


def hard(rng: random.Random) -> Case:
    kind = rng.choice(["evens", "reverse", "count_char", "sum_list", "vowels", "fact", "clamp"])
    if kind == "evens":
        e = rng.choice(["only_evens", "keep_even", "filter_even"])
        ls = [[1, 2, 3, 4], [], [7, 9], [0, -2, 5]]
        return e, f"def {e}(nums):", "returns a list of the even numbers in nums, in order", "return [n for n in nums if n % 2 == 0]", _tests(e, [((v,), [x for x in v if x % 2 == 0]) for v in ls])
    if kind == "reverse":
        e = rng.choice(["reverse", "backwards", "reversed_string"])
        ws = ["abc", "", "racecar", "ab c"]
        return e, f"def {e}(s):", "returns the string s reversed", "return s[::-1]", _tests(e, [((w,), w[::-1]) for w in ws])
    if kind == "count_char":
        ch = rng.choice("aeiost")
        e = f"count_{ch}"
        ws = [f"{ch}{ch}x", "", f"x{ch}y{ch}z{ch}", "qqq"]
        return e, f"def {e}(s):", f"returns how many times the letter {ch!r} occurs in s", f"return s.count({ch!r})", _tests(e, [((w,), w.count(ch)) for w in ws])
    if kind == "sum_list":
        e = rng.choice(["total", "sum_all", "add_all"])
        ls = [[1, 2, 3], [], [-1, 1], [10]]
        return e, f"def {e}(nums):", "returns the sum of the numbers in the list nums", "return sum(nums)", _tests(e, [((v,), sum(v)) for v in ls])
    if kind == "vowels":
        e = rng.choice(["count_vowels", "vowel_count"])
        ws = ["hello", "", "AEIOU", "xyz"]
        ref = "return sum(1 for c in s.lower() if c in 'aeiou')"
        return e, f"def {e}(s):", "returns the number of vowels (a, e, i, o, u, any case) in s", ref, _tests(e, [((w,), sum(c in "aeiou" for c in w.lower())) for w in ws])
    if kind == "fact":
        e = rng.choice(["factorial", "fact"])
        ref = "r = 1\n    for i in range(2, n + 1):\n        r *= i\n    return r"
        import math
        return e, f"def {e}(n):", "returns n! (the factorial of n, with 0! = 1)", ref, _tests(e, [((x,), math.factorial(x)) for x in [0, 1, 4, 6]])
    lo, hi = rng.randint(0, 5), rng.randint(10, 20)
    e = f"clamp_{lo}_{hi}"
    ref = f"return max({lo}, min({hi}, x))"
    return e, f"def {e}(x):", f"returns x limited to the range {lo} to {hi} (below {lo} gives {lo}, above {hi} gives {hi})", ref, _tests(e, [((x,), max(lo, min(hi, x))) for x in [-5, lo, 7, hi + 3]])


def _to_case(cid: str, level: str, item: Case) -> dict:
    entry, signature, spec, body, tests = item
    reference = f"{signature}\n    {body}\n"
    return {"id": cid, "inputs": {"signature": signature, "spec": spec},
            "expected": {"entry_point": entry, "tests": tests, "reference": reference},
            "tags": {"difficulty": level}}


def main() -> None:
    run(__doc__, OUT, 99, "code", (easy, medium, hard), _to_case, key=lambda item: (item[0], item[2]))



if __name__ == "__main__":
    main()
