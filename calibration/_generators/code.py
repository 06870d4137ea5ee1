"""Write calibration/code/calibration.jsonl: small Python modules of functions with docstrings and tests.

Each sample is a module of a few functions (and now and then a small class) drawn
from the families below, written here: names, parameter names, docstring style,
type hints and test values vary with the seed. Expected values in the tests are
computed by this script, and the test suite runs every sample's tests. Seeded:
rerunning reproduces the file byte for byte.
Usage: .venv/bin/python -m calibration._generators.code [--seed 99] [--out DIR]
"""

from __future__ import annotations

import math
import random
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from calibration._generators._common import ROOT, build_samples, main, write_set

NAME = "code"
SEED = 99

Family = Callable[[random.Random], str]
FAMILIES: list[Family] = []


def family(fn: Family) -> Family:
    FAMILIES.append(fn)
    return fn


def function(
    rng: random.Random,
    name: str,
    params: list[tuple[str, str]],
    returns: str,
    summary: str,
    arg_docs: list[str],
    return_doc: str,
    body: str,
    cases: list[tuple[tuple[Any, ...], Any]],
    imports: tuple[str, ...] = (),
) -> str:
    """Render one function (docstring in a random style, hints or not) and its tests.

    ``params`` are (name, annotation); ``body`` is unindented source; ``cases`` are
    (arguments, expected result) pairs, already computed. Leading ``import`` lines
    are hoisted to the top of the module by :func:`module`.
    """
    hints = rng.random() < 0.6
    sig = ", ".join(f"{p}: {a}" if hints else p for p, a in params)
    head = f"def {name}({sig}) -> {returns}:" if hints else f"def {name}({sig}):"
    style = rng.choice(["google", "rest", "plain", "doctest"])
    doc = [summary]
    if style == "google":
        doc += ["", "Args:", *(f"    {p}: {d}" for (p, _), d in zip(params, arg_docs)), "", "Returns:", f"    {return_doc}"]
    elif style == "rest":
        doc += ["", *(f":param {p}: {d}" for (p, _), d in zip(params, arg_docs)), f":returns: {return_doc}"]
    elif style == "doctest":
        args, out = cases[0]
        doc += ["", f">>> {name}({', '.join(map(repr, args))})", repr(out)]
    docstring = doc[0] if len(doc) == 1 else "\n".join(doc) + "\n"
    lines = [head, textwrap.indent(f'"""{docstring}"""', "    "), textwrap.indent(body.strip("\n"), "    ")]
    tests = [f"assert {name}({', '.join(map(repr, args))}) == {out!r}" for args, out in cases]
    if rng.random() < 0.5:
        test = f"def test_{name}():\n" + textwrap.indent("\n".join(tests), "    ")
    else:
        rows = "".join(f"        ({_tuple(args)}, {out!r}),\n" for args, out in cases)
        test = (f"def test_{name}_examples():\n    cases = [\n{rows}    ]\n"
                f"    for args, expected in cases:\n        assert {name}(*args) == expected, args")
    return "\n".join([*imports, *([""] if imports else []), "\n".join(lines), "", "", test])


def _tuple(args: tuple[Any, ...]) -> str:
    inner = ", ".join(map(repr, args))
    return f"({inner},)" if len(args) == 1 else f"({inner})"


def _words(rng: random.Random, k: int) -> list[str]:
    pool = ["apple", "river", "stone", "cloud", "lamp", "tiger", "bread", "green", "north", "pencil",
            "orbit", "maple", "delta", "echo", "violet", "harbor", "ink", "garden", "quiet", "zebra"]
    return [rng.choice(pool) for _ in range(k)]


# --- families -----------------------------------------------------------------------------------


@family
def clamp(rng: random.Random) -> str:
    name = rng.choice(["clamp", "bound", "limit_to_range"])
    v, lo, hi = rng.choice([("value", "low", "high"), ("x", "lo", "hi"), ("n", "minimum", "maximum")])
    a, b = rng.randint(-20, 0), rng.randint(1, 30)
    cases = [((x, a, b), min(max(x, a), b)) for x in (a - 5, a, (a + b) // 2, b, b + rng.randint(1, 9))]
    body = rng.choice([f"return max({lo}, min({v}, {hi}))",
                       f"if {v} < {lo}:\n    return {lo}\nif {v} > {hi}:\n    return {hi}\nreturn {v}"])
    return function(rng, name, [(v, "float"), (lo, "float"), (hi, "float")], "float",
                    f"Return {v} limited to the closed range [{lo}, {hi}].",
                    ["the number to limit", "the smallest allowed result", "the largest allowed result"],
                    f"{lo} if {v} is below it, {hi} if above it, else {v} unchanged", body, cases)


@family
def count_vowels(rng: random.Random) -> str:
    name = rng.choice(["count_vowels", "vowel_count", "num_vowels"])
    t = rng.choice(["text", "s", "word"])
    vowels = rng.choice(["aeiou", "aeiouy"])
    cases = [((w,), sum(ch in vowels for ch in w.lower())) for w in [*_words(rng, 3), "", "RHYTHM"]]
    body = rng.choice([f'return sum(1 for ch in {t}.lower() if ch in "{vowels}")',
                       f'count = 0\nfor ch in {t}.lower():\n    if ch in "{vowels}":\n        count += 1\nreturn count'])
    return function(rng, name, [(t, "str")], "int", f"Count the vowels ({', '.join(vowels)}) in {t}, ignoring case.",
                    ["the text to scan"], "the number of vowels", body, cases)


@family
def palindrome(rng: random.Random) -> str:
    name = rng.choice(["is_palindrome", "reads_same_backwards", "palindromic"])
    t = rng.choice(["text", "phrase", "s"])
    samples = ["Never odd or even", "level", "Step on no pets", "python", "Was it a car or a cat I saw",
               "abcba", "abca", "No lemon, no melon", "quantization"]
    def ref(s: str) -> bool:
        c = [ch.lower() for ch in s if ch.isalnum()]
        return c == c[::-1]
    cases = [((s,), ref(s)) for s in rng.sample(samples, 5)]
    body = rng.choice([f"cleaned = [ch.lower() for ch in {t} if ch.isalnum()]\nreturn cleaned == cleaned[::-1]",
                       (f'cleaned = "".join(ch.lower() for ch in {t} if ch.isalnum())\n'
                        "left, right = 0, len(cleaned) - 1\nwhile left < right:\n    if cleaned[left] != cleaned[right]:\n"
                        "        return False\n    left += 1\n    right -= 1\nreturn True")])
    return function(rng, name, [(t, "str")], "bool",
                    f"Tell whether {t} reads the same forwards and backwards, ignoring case, spaces and punctuation.",
                    ["the text to check"], "True for a palindrome, else False", body, cases)


@family
def chunked(rng: random.Random) -> str:
    name = rng.choice(["chunked", "batched", "split_into_chunks"])
    xs, n = rng.choice([("items", "size"), ("values", "n"), ("seq", "chunk_size")])
    cases = []
    for _ in range(3):
        data, k = list(range(rng.randint(0, 9))), rng.randint(1, 4)
        cases.append(((data, k), [data[i:i + k] for i in range(0, len(data), k)]))
    body = rng.choice([f"if {n} < 1:\n    raise ValueError(\"{n} must be at least 1\")\nreturn [{xs}[i:i + {n}] for i in range(0, len({xs}), {n})]",
                       f"if {n} < 1:\n    raise ValueError(\"{n} must be at least 1\")\nout = []\nfor start in range(0, len({xs}), {n}):\n    out.append({xs}[start:start + {n}])\nreturn out"])
    return function(rng, name, [(xs, "list"), (n, "int")], "list[list]",
                    f"Split {xs} into consecutive lists of length {n}; the last may be shorter.",
                    ["the list to split", "the length of each chunk (at least 1)"], "a list of lists, in order", body, cases)


@family
def flatten(rng: random.Random) -> str:
    name = rng.choice(["flatten", "flatten_once", "concat_lists"])
    p = rng.choice(["nested", "lists", "groups"])
    cases = []
    for _ in range(3):
        nested = [[rng.randint(0, 9) for _ in range(rng.randint(0, 3))] for _ in range(rng.randint(0, 4))]
        cases.append(((nested,), [x for sub in nested for x in sub]))
    body = rng.choice([f"return [x for sub in {p} for x in sub]",
                       f"result = []\nfor sub in {p}:\n    result.extend(sub)\nreturn result"])
    return function(rng, name, [(p, "list[list]")], "list", f"Join the lists in {p} into one list, keeping their order.",
                    ["a list of lists"], "one flat list", body, cases)


@family
def word_counts(rng: random.Random) -> str:
    name = rng.choice(["word_counts", "count_words", "word_frequencies"])
    t = rng.choice(["text", "sentence", "document"])
    cases = []
    for _ in range(2):
        words = _words(rng, rng.randint(2, 7))
        s = " ".join(w.upper() if rng.random() < 0.3 else w for w in words)
        counts: dict[str, int] = {}
        for w in s.lower().split():
            counts[w] = counts.get(w, 0) + 1
        cases.append(((s,), counts))
    body = rng.choice([f"counts = {{}}\nfor word in {t}.lower().split():\n    counts[word] = counts.get(word, 0) + 1\nreturn counts",
                       f"counts: dict[str, int] = {{}}\nfor word in {t}.split():\n    key = word.lower()\n    counts[key] = counts.get(key, 0) + 1\nreturn counts"])
    return function(rng, name, [(t, "str")], "dict[str, int]", f"Count how often each word occurs in {t} (case-insensitive).",
                    ["words separated by whitespace"], "a dict from lower-cased word to count", body, cases)


@family
def fizzbuzz(rng: random.Random) -> str:
    a, b = rng.choice([(3, 5), (2, 7), (3, 4), (4, 6)])
    wa, wb = rng.choice([("Fizz", "Buzz"), ("Ping", "Pong"), ("Foo", "Bar")])
    name = rng.choice([f"{wa.lower()}{wb.lower()}", "label_number", "game_word"])
    n = rng.choice(["n", "number", "i"])
    def ref(x: int) -> str:
        out = (wa if x % a == 0 else "") + (wb if x % b == 0 else "")
        return out or str(x)
    cases = [((x,), ref(x)) for x in sorted(rng.sample(range(1, 31), 5))]
    body = f'word = ""\nif {n} % {a} == 0:\n    word += "{wa}"\nif {n} % {b} == 0:\n    word += "{wb}"\nreturn word or str({n})'
    return function(rng, name, [(n, "int")], "str",
                    f'Return "{wa}" for multiples of {a}, "{wb}" for multiples of {b}, both for multiples of both, else the number.',
                    ["a positive integer"], "the word or the number as text", body, cases)


@family
def gcd(rng: random.Random) -> str:
    name = rng.choice(["gcd", "greatest_common_divisor", "highest_common_factor"])
    a, b = rng.choice([("a", "b"), ("x", "y"), ("m", "n")])
    pairs = [(rng.randint(1, 20) * k, rng.randint(1, 20) * k) for k in rng.sample(range(1, 13), 3)] + [(0, rng.randint(1, 50))]
    cases = [((x, y), math.gcd(x, y)) for x, y in pairs]
    body = rng.choice([f"while {b}:\n    {a}, {b} = {b}, {a} % {b}\nreturn abs({a})",
                       f"if {b} == 0:\n    return abs({a})\nreturn {name}({b}, {a} % {b})"])
    return function(rng, name, [(a, "int"), (b, "int")], "int", "Greatest common divisor by Euclid's algorithm.",
                    ["the first integer", "the second integer"], f"the largest integer dividing both {a} and {b}", body, cases)


@family
def fibonacci(rng: random.Random) -> str:
    name = rng.choice(["fibonacci", "fib", "nth_fibonacci"])
    n = rng.choice(["n", "index", "k"])
    f = [0, 1]
    while len(f) < 40:
        f.append(f[-1] + f[-2])
    cases = [((i,), f[i]) for i in sorted(rng.sample(range(40), 5))]
    body = rng.choice([f"a, b = 0, 1\nfor _ in range({n}):\n    a, b = b, a + b\nreturn a",
                       f"if {n} < 2:\n    return {n}\nprev, cur = 0, 1\nfor _ in range({n} - 1):\n    prev, cur = cur, prev + cur\nreturn cur"])
    return function(rng, name, [(n, "int")], "int", f"Return the {n}-th Fibonacci number, counting fib(0) = 0 and fib(1) = 1.",
                    ["a non-negative position in the sequence"], "the Fibonacci number at that position", body, cases)


@family
def convert_temperature(rng: random.Random) -> str:
    if rng.random() < 0.5:
        name, p, doc = rng.choice(["celsius_to_fahrenheit", "c_to_f"]), rng.choice(["celsius", "c", "degrees"]), "Celsius to Fahrenheit"
        body = f"return {p} * 9 / 5 + 32"
        cases = [((x,), x * 9 / 5 + 32) for x in (0, 100, -40, rng.choice([10, 20, 25, 35]))]
    else:
        name, p, doc = rng.choice(["fahrenheit_to_celsius", "f_to_c"]), rng.choice(["fahrenheit", "f", "degrees"]), "Fahrenheit to Celsius"
        body = f"return ({p} - 32) * 5 / 9"
        cases = [((x,), (x - 32) * 5 / 9) for x in (32, 212, -40, rng.choice([50, 68, 86, 104]))]
    return function(rng, name, [(p, "float")], "float", f"Convert a temperature from {doc}.",
                    ["the temperature to convert"], "the converted temperature", body, cases)


@family
def moving_average(rng: random.Random) -> str:
    name = rng.choice(["moving_average", "rolling_mean", "sliding_average"])
    xs, w = rng.choice([("values", "window"), ("data", "width"), ("xs", "k")])
    cases = []
    for _ in range(2):
        data = [rng.randint(0, 20) for _ in range(rng.randint(3, 7))]
        k = rng.randint(1, 3)
        cases.append(((data, k), [sum(data[i:i + k]) / k for i in range(len(data) - k + 1)]))
    body = rng.choice([f"return [sum({xs}[i:i + {w}]) / {w} for i in range(len({xs}) - {w} + 1)]",
                       f"out = []\ntotal = sum({xs}[:{w}])\nfor i in range(len({xs}) - {w} + 1):\n    if i:\n        total += {xs}[i + {w} - 1] - {xs}[i - 1]\n    out.append(total / {w})\nreturn out"])
    return function(rng, name, [(xs, "list[float]"), (w, "int")], "list[float]",
                    f"Average of every run of {w} consecutive items of {xs}.",
                    ["the numbers to smooth", "how many items each average covers"], f"len({xs}) - {w} + 1 averages", body, cases)


@family
def parse_pairs(rng: random.Random) -> str:
    name = rng.choice(["parse_pairs", "parse_settings", "parse_key_values"])
    p = rng.choice(["text", "line", "spec"])
    sep, eq = rng.choice([(";", "="), (",", "="), ("&", "="), (";", ":")])
    cases = []
    for _ in range(2):
        keys = rng.sample(["host", "port", "mode", "user", "level", "retries", "color"], rng.randint(1, 4))
        pairs = {k: rng.choice(["on", "off", "fast", str(rng.randint(1, 9000))]) for k in keys}
        raw = sep.join(f"{k}{eq}{v}" for k, v in pairs.items())
        cases.append(((raw,), pairs))
    cases.append((("",), {}))
    body = (f"result = {{}}\nfor item in {p}.split({sep!r}):\n    if not item.strip():\n        continue\n"
            f"    key, _, value = item.partition({eq!r})\n    result[key.strip()] = value.strip()\nreturn result")
    return function(rng, name, [(p, "str")], "dict[str, str]",
                    f"Parse '{'key' + eq + 'value'}' pairs separated by '{sep}' into a dict.",
                    ["the text to parse; empty items are skipped"], "a dict of stripped keys and values", body, cases)


@family
def dedupe(rng: random.Random) -> str:
    name = rng.choice(["dedupe", "unique_in_order", "remove_duplicates"])
    p = rng.choice(["items", "values", "seq"])
    cases = []
    for _ in range(3):
        data = [rng.randint(0, 5) for _ in range(rng.randint(0, 8))]
        cases.append(((data,), list(dict.fromkeys(data))))
    body = rng.choice([f"seen = set()\nout = []\nfor item in {p}:\n    if item not in seen:\n        seen.add(item)\n        out.append(item)\nreturn out",
                       f"return list(dict.fromkeys({p}))"])
    return function(rng, name, [(p, "list")], "list", f"Drop repeated items from {p}, keeping the first of each, in order.",
                    ["a list of hashable items"], "a new list without repeats", body, cases)


@family
def rotate(rng: random.Random) -> str:
    name = rng.choice(["rotate", "rotate_left", "shift_items"])
    xs, k = rng.choice([("items", "k"), ("values", "steps"), ("seq", "n")])
    cases = []
    for _ in range(3):
        data, s = list("abcdefg"[: rng.randint(1, 7)]), rng.randint(0, 9)
        m = s % len(data)
        cases.append(((data, s), data[m:] + data[:m]))
    body = f"if not {xs}:\n    return []\n{k} %= len({xs})\nreturn {xs}[{k}:] + {xs}[:{k}]"
    return function(rng, name, [(xs, "list"), (k, "int")], "list", f"Rotate {xs} left by {k} places.",
                    ["the list to rotate", "how many places; may exceed the length"], "a new, rotated list", body, cases)


@family
def caesar(rng: random.Random) -> str:
    name = rng.choice(["caesar", "shift_letters", "rot_encode"])
    t, k = rng.choice([("text", "shift"), ("message", "key"), ("s", "k")])
    def ref(s: str, n: int) -> str:
        out = []
        for ch in s:
            if ch.isalpha() and ch.isascii():
                base = ord("A") if ch.isupper() else ord("a")
                out.append(chr((ord(ch) - base + n) % 26 + base))
            else:
                out.append(ch)
        return "".join(out)
    cases = [((s, n), ref(s, n)) for s, n in [("Hello, World!", rng.randint(1, 25)), ("abc xyz", rng.randint(1, 25)),
                                              (" ".join(_words(rng, 2)), rng.randint(1, 25))]]
    body = (f'out = []\nfor ch in {t}:\n    if ch.isalpha() and ch.isascii():\n        base = ord("A") if ch.isupper() else ord("a")\n'
            f"        out.append(chr((ord(ch) - base + {k}) % 26 + base))\n    else:\n        out.append(ch)\nreturn \"\".join(out)")
    return function(rng, name, [(t, "str"), (k, "int")], "str", f"Shift each ASCII letter of {t} by {k} places, wrapping around.",
                    ["the text to encode", "how far to shift each letter"], "the encoded text; other characters unchanged", body, cases)


@family
def binary_search(rng: random.Random) -> str:
    name = rng.choice(["binary_search", "find_sorted", "index_of"])
    xs, x = rng.choice([("items", "target"), ("sorted_values", "value"), ("arr", "x")])
    data = sorted(rng.sample(range(100), rng.randint(5, 12)))
    targets = rng.sample(data, 2) + [rng.choice([t for t in range(100) if t not in data])]
    cases = [((data, t), data.index(t) if t in data else -1) for t in targets]
    body = (f"lo, hi = 0, len({xs}) - 1\nwhile lo <= hi:\n    mid = (lo + hi) // 2\n    if {xs}[mid] == {x}:\n        return mid\n"
            f"    if {xs}[mid] < {x}:\n        lo = mid + 1\n    else:\n        hi = mid - 1\nreturn -1")
    return function(rng, name, [(xs, "list[int]"), (x, "int")], "int", f"Find {x} in the sorted list {xs} by binary search.",
                    ["a list sorted in ascending order", "the value to look for"], f"the index of {x}, or -1 if absent", body, cases)


@family
def merge_sorted(rng: random.Random) -> str:
    name = rng.choice(["merge_sorted", "merge", "merge_two"])
    a, b = rng.choice([("left", "right"), ("a", "b"), ("first", "second")])
    cases = []
    for _ in range(2):
        x = sorted(rng.randint(0, 30) for _ in range(rng.randint(0, 5)))
        y = sorted(rng.randint(0, 30) for _ in range(rng.randint(0, 5)))
        cases.append(((x, y), sorted(x + y)))
    body = (f"out = []\ni = j = 0\nwhile i < len({a}) and j < len({b}):\n    if {a}[i] <= {b}[j]:\n        out.append({a}[i])\n        i += 1\n"
            f"    else:\n        out.append({b}[j])\n        j += 1\nout.extend({a}[i:])\nout.extend({b}[j:])\nreturn out")
    return function(rng, name, [(a, "list[int]"), (b, "list[int]")], "list[int]", "Merge two sorted lists into one sorted list.",
                    ["a sorted list", "another sorted list"], "a new sorted list with every item of both", body, cases)


@family
def case_convert(rng: random.Random) -> str:
    if rng.random() < 0.5:
        name, p = rng.choice(["snake_to_camel", "to_camel_case"]), rng.choice(["name", "identifier", "s"])
        words = [rng.sample(["user", "id", "total", "count", "max", "value", "file", "path", "http", "status"], rng.randint(1, 3)) for _ in range(3)]
        cases = [(("_".join(w),), w[0] + "".join(x.capitalize() for x in w[1:])) for w in words]
        body = f'first, *rest = {p}.split("_")\nreturn first + "".join(word.capitalize() for word in rest)'
        return function(rng, name, [(p, "str")], "str", f"Turn a snake_case {p} into camelCase.",
                        ["a lower-case name with underscores"], "the camelCase form", body, cases)
    name, p = rng.choice(["camel_to_snake", "to_snake_case"]), rng.choice(["name", "identifier", "s"])
    words = [rng.sample(["user", "id", "total", "count", "max", "value", "file", "path", "status"], rng.randint(1, 3)) for _ in range(3)]
    cases = [((w[0] + "".join(x.capitalize() for x in w[1:]),), "_".join(w)) for w in words]
    body = f'out = []\nfor ch in {p}:\n    if ch.isupper():\n        out.append("_")\n        out.append(ch.lower())\n    else:\n        out.append(ch)\nreturn "".join(out)'
    return function(rng, name, [(p, "str")], "str", f"Turn a camelCase {p} into snake_case.",
                    ["a camelCase name"], "the snake_case form", body, cases)


@family
def digit_sum(rng: random.Random) -> str:
    name = rng.choice(["digit_sum", "sum_of_digits", "add_digits"])
    n = rng.choice(["n", "number", "value"])
    cases = [((x,), sum(map(int, str(abs(x))))) for x in [rng.randint(0, 9), rng.randint(10, 999), rng.randint(1000, 10**7), -rng.randint(10, 999)]]
    body = rng.choice([f"return sum(int(d) for d in str(abs({n})))",
                       f"{n} = abs({n})\ntotal = 0\nwhile {n}:\n    total += {n} % 10\n    {n} //= 10\nreturn total"])
    return function(rng, name, [(n, "int")], "int", f"Sum the decimal digits of {n} (the sign is ignored).",
                    ["an integer"], "the sum of its digits", body, cases)


@family
def primes(rng: random.Random) -> str:
    def is_p(x: int) -> bool:
        return x >= 2 and all(x % d for d in range(2, int(x ** 0.5) + 1))
    if rng.random() < 0.5:
        name, n = rng.choice(["is_prime", "prime", "check_prime"]), rng.choice(["n", "number"])
        cases = [((x,), is_p(x)) for x in [0, 1, 2, *rng.sample(range(3, 200), 4)]]
        body = f"if {n} < 2:\n    return False\nd = 2\nwhile d * d <= {n}:\n    if {n} % d == 0:\n        return False\n    d += 1\nreturn True"
        return function(rng, name, [(n, "int")], "bool", f"Tell whether {n} is a prime number.",
                        ["the integer to test"], f"True if {n} is prime", body, cases)
    name, n = rng.choice(["primes_below", "sieve", "primes_up_to"]), rng.choice(["limit", "n", "bound"])
    cases = [((x,), [p for p in range(x) if is_p(p)]) for x in [2, rng.randint(10, 30), rng.randint(31, 60)]]
    body = (f"if {n} < 3:\n    return []\nis_prime = [True] * {n}\nis_prime[0] = is_prime[1] = False\n"
            f"for i in range(2, int({n} ** 0.5) + 1):\n    if is_prime[i]:\n        for j in range(i * i, {n}, i):\n            is_prime[j] = False\n"
            f"return [i for i, flag in enumerate(is_prime) if flag]")
    return function(rng, name, [(n, "int")], "list[int]", f"All primes smaller than {n}, by the sieve of Eratosthenes.",
                    ["the exclusive upper bound"], "the primes in ascending order", body, cases)


@family
def transpose(rng: random.Random) -> str:
    name = rng.choice(["transpose", "swap_rows_and_columns"])
    m = rng.choice(["matrix", "grid", "rows"])
    cases = []
    for _ in range(2):
        r, c = rng.randint(1, 3), rng.randint(1, 4)
        mat = [[rng.randint(0, 9) for _ in range(c)] for _ in range(r)]
        cases.append(((mat,), [list(col) for col in zip(*mat)]))
    body = rng.choice([f"return [list(column) for column in zip(*{m})]",
                       f"if not {m}:\n    return []\nreturn [[row[j] for row in {m}] for j in range(len({m}[0]))]"])
    return function(rng, name, [(m, "list[list[int]]")], "list[list[int]]", f"Transpose a rectangular {m} given as a list of rows.",
                    ["a list of equally long rows"], "the list of columns", body, cases)


@family
def median(rng: random.Random) -> str:
    name = rng.choice(["median", "middle_value"])
    p = rng.choice(["values", "data", "xs"])
    def ref(v: list[int]) -> float:
        s = sorted(v)
        mid = len(s) // 2
        return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2
    cases = [((v,), ref(v)) for v in ([rng.randint(0, 50) for _ in range(k)] for k in (1, 4, 5, 6))]
    body = (f"if not {p}:\n    raise ValueError(\"median of an empty list\")\nordered = sorted({p})\nmid = len(ordered) // 2\n"
            "if len(ordered) % 2:\n    return ordered[mid]\nreturn (ordered[mid - 1] + ordered[mid]) / 2")
    return function(rng, name, [(p, "list[float]")], "float", f"The median of {p}: the middle value, or the mean of the two middle values.",
                    ["a non-empty list of numbers"], "the median", body, cases)


@family
def run_length(rng: random.Random) -> str:
    name = rng.choice(["run_length_encode", "rle", "compress_runs"])
    t = rng.choice(["text", "s", "data"])
    def ref(s: str) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for ch in s:
            if out and out[-1][0] == ch:
                out[-1] = (ch, out[-1][1] + 1)
            else:
                out.append((ch, 1))
        return out
    cases = [((s,), ref(s)) for s in ["", "".join(rng.choice("ab") * rng.randint(1, 3) for _ in range(4)),
                                      "".join(rng.choice("xyz") * rng.randint(1, 4) for _ in range(3))]]
    body = f"runs = []\nfor ch in {t}:\n    if runs and runs[-1][0] == ch:\n        runs[-1] = (ch, runs[-1][1] + 1)\n    else:\n        runs.append((ch, 1))\nreturn runs"
    return function(rng, name, [(t, "str")], "list[tuple[str, int]]", f"Encode {t} as (character, run length) pairs.",
                    ["the text to encode"], "a list of (character, count) tuples", body, cases)


@family
def roman(rng: random.Random) -> str:
    name = rng.choice(["roman_to_int", "parse_roman", "from_roman"])
    p = rng.choice(["numeral", "s", "roman"])
    vals = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
    def to_roman(n: int) -> str:
        table = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"), (50, "L"), (40, "XL"),
                 (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]
        out = ""
        for v, sym in table:
            while n >= v:
                out, n = out + sym, n - v
        return out
    cases = [((to_roman(n),), n) for n in rng.sample(range(1, 2500), 4)]
    body = (f'values = {vals!r}\ntotal = 0\nfor i, ch in enumerate({p}):\n    value = values[ch]\n'
            f"    if i + 1 < len({p}) and values[{p}[i + 1]] > value:\n        total -= value\n    else:\n        total += value\nreturn total")
    return function(rng, name, [(p, "str")], "int", "Convert a Roman numeral to an integer.",
                    ["an upper-case Roman numeral"], "its value", body, cases)


@family
def leap_year(rng: random.Random) -> str:
    name = rng.choice(["is_leap_year", "leap_year", "is_leap"])
    y = rng.choice(["year", "y"])
    cases = [((x,), x % 4 == 0 and (x % 100 != 0 or x % 400 == 0)) for x in [1900, 2000, rng.randint(1901, 1999), rng.choice([2024, 2028, 1996])]]
    body = rng.choice([f"return {y} % 4 == 0 and ({y} % 100 != 0 or {y} % 400 == 0)",
                       f"if {y} % 400 == 0:\n    return True\nif {y} % 100 == 0:\n    return False\nreturn {y} % 4 == 0"])
    return function(rng, name, [(y, "int")], "bool", "Tell whether a year is a leap year in the Gregorian calendar.",
                    ["the year, e.g. 2024"], "True for a leap year", body, cases)


@family
def invert(rng: random.Random) -> str:
    name = rng.choice(["invert", "invert_dict", "swap_keys_values"])
    d = rng.choice(["mapping", "d", "table"])
    cases = []
    for _ in range(2):
        keys = rng.sample(["a", "b", "c", "d", "e", "f"], rng.randint(1, 4))
        m = {k: rng.randint(1, 3) for k in keys}
        inv: dict[int, list[str]] = {}
        for k, v in m.items():
            inv.setdefault(v, []).append(k)
        cases.append(((m,), inv))
    body = f"inverted = {{}}\nfor key, value in {d}.items():\n    inverted.setdefault(value, []).append(key)\nreturn inverted"
    return function(rng, name, [(d, "dict")], "dict", f"Map each value of {d} to the list of keys that have it.",
                    ["a dict with hashable values"], "a dict from value to list of keys, in insertion order", body, cases)


@family
def truncate(rng: random.Random) -> str:
    name = rng.choice(["truncate", "shorten", "ellipsize"])
    t, w = rng.choice([("text", "width"), ("s", "limit"), ("title", "max_len")])
    mark = rng.choice(["...", "…"])
    def ref(s: str, n: int) -> str:
        return s if len(s) <= n else s[: n - len(mark)] + mark
    cases = [((s, n), ref(s, n)) for s, n in [(" ".join(_words(rng, 4)), rng.randint(8, 14)), ("short", 10), ("exactly ten", 11)]]
    body = f"if len({t}) <= {w}:\n    return {t}\nreturn {t}[: {w} - {len(mark)}] + {mark!r}"
    return function(rng, name, [(t, "str"), (w, "int")], "str", f"Cut {t} to at most {w} characters, ending with {mark!r} when cut.",
                    ["the text to shorten", f"the maximum length, at least {len(mark)}"], "the possibly shortened text", body, cases)


@family
def running_total(rng: random.Random) -> str:
    name = rng.choice(["running_total", "cumulative_sum", "prefix_sums"])
    p = rng.choice(["values", "numbers", "xs"])
    cases = []
    for _ in range(3):
        data = [rng.randint(-5, 20) for _ in range(rng.randint(0, 6))]
        out, acc = [], 0
        for x in data:
            acc += x
            out.append(acc)
        cases.append(((data,), out))
    doc = (f"Running totals of {p}.", ["the numbers to add up"], "a list whose i-th item is the sum of the first i + 1 numbers")
    if rng.random() < 0.5:
        return function(rng, name, [(p, "list[int]")], "list[int]", *doc, f"return list(itertools.accumulate({p}))",
                        cases, imports=("import itertools",))
    body = f"totals = []\nacc = 0\nfor x in {p}:\n    acc += x\n    totals.append(acc)\nreturn totals"
    return function(rng, name, [(p, "list[int]")], "list[int]", *doc, body, cases)


@family
def safe_divide(rng: random.Random) -> str:
    name = rng.choice(["safe_divide", "divide_or_default", "ratio"])
    a, b, d = rng.choice([("numerator", "denominator", "default"), ("a", "b", "fallback"), ("x", "y", "otherwise")])
    dv = rng.choice([0.0, None, -1.0])
    cases = [((x, y, dv), x / y if y else dv) for x, y in [(rng.randint(1, 50), rng.choice([2, 4, 5, 8])), (rng.randint(1, 9), 0), (0, 3)]]
    body = f"if {b} == 0:\n    return {d}\nreturn {a} / {b}"
    return function(rng, name, [(a, "float"), (b, "float"), (d, "float | None")], "float | None",
                    f"Divide {a} by {b}, returning {d} instead of raising when {b} is zero.",
                    ["the number to divide", "the number to divide by", "the result to use for division by zero"],
                    f"{a} / {b}, or {d}", body, cases)


@family
def group_by_length(rng: random.Random) -> str:
    name = rng.choice(["group_by_length", "bucket_by_length", "words_by_length"])
    p = rng.choice(["words", "names", "tokens"])
    cases = []
    for _ in range(2):
        ws = _words(rng, rng.randint(2, 6))
        groups: dict[int, list[str]] = {}
        for w in ws:
            groups.setdefault(len(w), []).append(w)
        cases.append(((ws,), groups))
    imports: tuple[str, ...] = ()
    if rng.random() < 0.5:
        body = f"groups = {{}}\nfor word in {p}:\n    groups.setdefault(len(word), []).append(word)\nreturn groups"
    else:
        imports = ("from collections import defaultdict",)
        body = f"groups = defaultdict(list)\nfor word in {p}:\n    groups[len(word)].append(word)\nreturn dict(groups)"
    return function(rng, name, [(p, "list[str]")], "dict[int, list[str]]", f"Group {p} by their length, keeping their order.",
                    ["the strings to group"], "a dict from length to the strings of that length", body, cases, imports)


@family
def stack_class(rng: random.Random) -> str:
    cls = rng.choice(["Stack", "LifoStack", "History"])
    push, pop = rng.choice([("push", "pop"), ("add", "take"), ("put", "remove_last")])
    vals = [rng.randint(1, 99) for _ in range(3)]
    return (
        f"class {cls}:\n"
        f'    """A last-in, first-out stack backed by a list."""\n\n'
        f"    def __init__(self):\n        self._items = []\n\n"
        f"    def {push}(self, item):\n        \"\"\"Put item on top of the stack.\"\"\"\n        self._items.append(item)\n\n"
        f"    def {pop}(self):\n        \"\"\"Remove and return the top item; raise IndexError when empty.\"\"\"\n"
        f"        if not self._items:\n            raise IndexError(\"{pop} from an empty {cls}\")\n        return self._items.pop()\n\n"
        f"    def __len__(self):\n        return len(self._items)\n\n\n"
        f"def test_{cls.lower()}_order():\n    s = {cls}()\n"
        + "".join(f"    s.{push}({v})\n" for v in vals)
        + f"    assert len(s) == 3\n    assert s.{pop}() == {vals[2]}\n    assert s.{pop}() == {vals[1]}\n    assert len(s) == 1\n\n\n"
        f"def test_{cls.lower()}_empty():\n    s = {cls}()\n    try:\n        s.{pop}()\n    except IndexError:\n        pass\n"
        f"    else:\n        raise AssertionError(\"expected IndexError\")"
    )


@family
def counter_class(rng: random.Random) -> str:
    cls = rng.choice(["Tally", "HitCounter", "VoteCounter"])
    words = _words(rng, rng.randint(3, 7))
    counts: dict[str, int] = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    top = max(counts, key=counts.__getitem__)  # max keeps the first of equal keys, as the class does
    return (
        f"class {cls}:\n"
        f'    """Counts occurrences of keys and reports the most common one."""\n\n'
        f"    def __init__(self):\n        self.counts = {{}}\n\n"
        f"    def add(self, key):\n        \"\"\"Count one more occurrence of key.\"\"\"\n        self.counts[key] = self.counts.get(key, 0) + 1\n\n"
        f"    def most_common(self):\n        \"\"\"The key seen most often; ties go to the key seen first.\"\"\"\n"
        f"        best = None\n        for key, count in self.counts.items():\n"
        f"            if best is None or count > self.counts[best]:\n                best = key\n        return best\n\n\n"
        f"def test_{cls.lower()}():\n    t = {cls}()\n    for key in {words!r}:\n        t.add(key)\n"
        f"    assert t.counts == {counts!r}\n    assert t.most_common() == {top!r}"
    )


MODULE_DOCS = ["Small utility functions with their tests.", "Helpers for a data-cleaning script.",
               "Assorted functions collected from exercises.", "Utilities used by the command-line tool.",
               "Pure helper functions; run the tests with pytest.", None, None]


def finish(rng: random.Random, parts: list[str]) -> str:
    """One module: an optional docstring, the parts' imports hoisted and de-duplicated, then the parts."""
    imports: list[str] = []
    bodies: list[str] = []
    for part in parts:
        lines = part.split("\n")
        while lines and lines[0].startswith(("import ", "from ")):
            if lines[0] not in imports:
                imports.append(lines[0])
            lines.pop(0)
        bodies.append("\n".join(lines).strip("\n"))
    doc = MODULE_DOCS[len("".join(parts)) % len(MODULE_DOCS)]
    head = ([f'"""{doc}"""'] if doc else []) + (["\n".join(sorted(imports))] if imports else [])
    return "\n\n\n".join([*(["\n\n".join(head)] if head else []), *bodies]) + "\n"


def part(rng: random.Random) -> str:
    return rng.choice(FAMILIES)(rng)


def defined_name(part: str) -> str:
    """The first function or class a part defines: a module must not define one name twice."""
    return next(line.split()[1].split("(")[0].rstrip(":") for line in part.split("\n") if line.startswith(("def ", "class ")))


def texts(seed: int = SEED) -> list[str]:
    return build_samples(random.Random(seed), part, finish=finish, key=defined_name)


def generate(out_dir: Path = ROOT / NAME, seed: int = SEED) -> Path:
    """Write ``out_dir/calibration.jsonl`` from ``seed``; the shipped file is ``generate()``."""
    return write_set(out_dir, texts(seed))


if __name__ == "__main__":
    main(__doc__, NAME, generate, SEED)
