"""Tolerant parsing shared by the JSON-based scorers (pure functions)."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)(?:```|$)", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_NUMBER_TEXT = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?")


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (fenced in ```json or bare), or ``None``.

    Tolerates trailing commas and Python-style dicts (single quotes, True/None),
    which small models often write. Fenced blocks are tried first.
    """
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for chunk in candidates:
        found = _first_object(chunk)
        if found is not None:
            return found
    return None


def _first_object(text: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            obj, _ = decoder.raw_decode(text, start)
        except ValueError:
            obj = _lenient(text, start)
        if isinstance(obj, dict):
            return obj
        start = text.find("{", start + 1)
    return None


def _lenient(text: str, start: int) -> Any:
    end = _matching_brace(text, start)
    if end is None:
        return None
    chunk = _TRAILING_COMMA.sub(r"\1", text[start : end + 1])
    try:
        return json.loads(chunk)
    except ValueError:
        pass
    try:
        return ast.literal_eval(chunk.replace("null", "None").replace("true", "True").replace("false", "False"))
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None


def _matching_brace(text: str, start: int) -> int | None:
    depth, quote, escaped = 0, None, False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


def normalise_value(value: Any) -> str | float | None:
    """Comparable form of a field value: numbers (also numeric strings such as
    ``"1,200.00"`` or ``"$40"``) become floats; strings are casefolded with
    whitespace collapsed and surrounding punctuation stripped; ``None``/empty stays ``None``."""
    if value is None or isinstance(value, bool):
        return None if value is None else str(value).lower()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True).casefold()
    text = re.sub(r"\s+", " ", str(value)).strip().strip(".,;:!\"'` ").strip()
    if not text:
        return None
    bare = re.sub(r"^[$€£]\s*|\s*(?:usd|eur|gbp|dollars?|euros?)$", "", text, flags=re.IGNORECASE)
    if bare and _NUMBER_TEXT.fullmatch(bare) and any(c.isdigit() for c in bare):
        return float(bare.replace(",", ""))
    return text.casefold()
