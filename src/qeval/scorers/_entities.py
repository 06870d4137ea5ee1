"""``entities``: typed entity lists (medical notes), entity-level micro F1.

The prompt asks for a JSON object mapping each entity type to a list, e.g.
``{"medications": ["metformin"], "doses": ["500 mg"], "frequencies": ["twice daily"],
"conditions": ["type 2 diabetes"]}``. The parser also accepts a line format
(``Medications: metformin, lisinopril``), salvages ``"type": [...]`` lists
from broken JSON, and accepts singular or synonym type names, and
comma-separated strings in place of lists. Items are ``(type, normalised value)``
pairs; normalisation casefolds, collapses whitespace, strips punctuation, writes
``500mg`` as ``500 mg`` and maps common frequency abbreviations (``bid`` ->
``twice daily``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from qeval.metric_specs import aggregate_names, pass_rate
from qeval.results import MetricSpec, MetricValue, Score
from qeval.scorers._f1 import case_f1, f1_metrics, f1_specs, overlap
from qeval.scorers._parse import extract_json_object

DEFAULT_TYPES = ("medications", "doses", "frequencies", "conditions")

_TYPE_SYNONYMS = {
    "medication": "medications", "medications": "medications", "drug": "medications", "drugs": "medications",
    "medicine": "medications", "medicines": "medications",
    "dose": "doses", "doses": "doses", "dosage": "doses", "dosages": "doses", "strength": "doses",
    "frequency": "frequencies", "frequencies": "frequencies", "schedule": "frequencies",
    "condition": "conditions", "conditions": "conditions", "diagnosis": "conditions", "diagnoses": "conditions",
    "problem": "conditions", "problems": "conditions", "disease": "conditions", "diseases": "conditions",
}

_FREQUENCY_SYNONYMS = {
    "once daily": ("daily", "once a day", "qd", "od", "every day", "once per day", "one time daily"),
    "twice daily": ("bid", "b.i.d", "twice a day", "two times a day", "two times daily", "twice per day"),
    "three times daily": ("tid", "t.i.d", "three times a day", "thrice daily", "three times per day"),
    "four times daily": ("qid", "q.i.d", "four times a day", "four times per day"),
    "at bedtime": ("qhs", "nightly", "at night", "every night", "before bed", "before bedtime"),
    "as needed": ("prn", "p.r.n", "when needed", "as required"),
    "once weekly": ("weekly", "once a week", "every week"),
}
_FREQ_MAP = {alias: canon for canon, aliases in _FREQUENCY_SYNONYMS.items() for alias in (canon, *aliases)}

_JSON_LIST = re.compile(r'"([A-Za-z _]+)"\s*:\s*\[([^\]]*)\]')
_LINE = re.compile(r"^\s*[-*#\s]*([A-Za-z ]+?)\s*[:=]\s*(.*)$")


def normalise_entity(kind: str, value: Any) -> str | None:
    """Comparable form of one entity (``None`` when empty or a placeholder like "none")."""
    text = re.sub(r"\s+", " ", str(value)).strip().strip(".,;:!\"'`[](){} ").casefold()
    if text in ("", "none", "n/a", "na", "null", "-", "ellipsis"):
        return None
    text = re.sub(r"(\d)\s*(mg|mcg|g|ml|units?|iu|%)\b", r"\1 \2", text)
    text = re.sub(r"\bunit\b", "units", text)
    if kind == "frequencies":
        text = _FREQ_MAP.get(text.replace(".", "").replace("b i d", "bid"), _FREQ_MAP.get(text, text))
    return text


def _canonical_type(name: str) -> str | None:
    return _TYPE_SYNONYMS.get(re.sub(r"[\s_\-]+", " ", str(name)).strip().casefold())


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple, set)):
        out: list[Any] = []
        for v in value:
            out.extend(_items(v) if isinstance(v, (list, tuple)) else [v])
        return out
    if isinstance(value, Mapping):
        return list(value.values())
    return [p for p in re.split(r"\s*[;,]\s*|\s+and\s+", str(value)) if p.strip()]


def parse_entities(text: str, types: Sequence[str] = DEFAULT_TYPES) -> dict[str, list[Any]] | None:
    """Entity lists by canonical type from a completion, or ``None`` when nothing parseable.

    Tries a JSON object first, then ``Type: a, b`` lines. Unknown types are dropped.
    """
    obj = extract_json_object(text)
    found: dict[str, list[Any]] = {}
    if obj is not None:
        for key, value in obj.items():
            kind = _canonical_type(key)
            if kind is not None and kind in types:
                found.setdefault(kind, []).extend(_items(value))
        if found:
            return found
    # Broken JSON (cut off, stray text): salvage each `"type": [...]` list on its own.
    for m in _JSON_LIST.finditer(text):
        if (kind := _canonical_type(m.group(1))) is not None and kind in types:
            found.setdefault(kind, []).extend(re.findall(r'"([^"]*)"', m.group(2)))
    if found:
        return found
    for line in text.splitlines():
        line_match = _LINE.match(line)
        if line_match and (kind := _canonical_type(line_match.group(1))) is not None and kind in types:
            found.setdefault(kind, []).extend(_items(line_match.group(2)))
    if found:
        return found
    return {} if obj is not None else None


def entity_pairs(entities: Mapping[str, Any], types: Sequence[str]) -> set[tuple[str, str]]:
    """Set of ``(type, normalised value)`` pairs for the given types."""
    pairs: set[tuple[str, str]] = set()
    for key, value in entities.items():
        kind = _canonical_type(key)
        if kind is None or kind not in types:
            continue
        for item in _items(value):
            norm = normalise_entity(kind, item)
            if norm is not None:
                pairs.add((kind, norm))
    return pairs


@dataclass(frozen=True)
class EntitiesScorer:
    """Entity-level F1 of the completion's typed entity lists against ``expected``.

    ``pass_f1``: a case passes when its F1 is at least this (default 1.0: every
    entity found and nothing extra). ``types``: the entity types scored.
    """

    pass_f1: float = 1.0
    types: tuple[str, ...] = field(default=DEFAULT_TYPES)
    name: str = "entities"
    metric_specs: ClassVar[tuple[MetricSpec, ...]] = (
        pass_rate("case F1 >= pass_f1 (by default: every entity found, nothing extra)"),
        *f1_specs("entity-level", "no entity list in the completion"),
    )
    metric_names: ClassVar[tuple[str, ...]] = aggregate_names(metric_specs)
    """What ``aggregate`` returns (SLOs are checked against it before anything runs)."""

    def __post_init__(self) -> None:
        if isinstance(self.pass_f1, bool) or not isinstance(self.pass_f1, (int, float)) or not 0 <= self.pass_f1 <= 1:
            raise ValueError(f"pass_f1 must be a number in [0, 1], got {self.pass_f1!r}")
        types = tuple(self.types)
        bad = [t for t in types if t not in DEFAULT_TYPES]
        if bad:
            raise ValueError(f"unknown entity types {bad}; known: {list(DEFAULT_TYPES)}")
        object.__setattr__(self, "types", types)

    def score(self, completion: str, expected: Any) -> Score:
        if not isinstance(expected, Mapping):
            raise ValueError(f"entities needs expected to be an object of entity lists, got {expected!r}")
        gold = entity_pairs(expected, self.types)
        parsed = parse_entities(completion, self.types)
        if parsed is None:
            tp, fp, fn = overlap(gold, set())
            return Score(0.0, False, "no entity list found in the completion (expected a JSON object)",
                         {"parseable": False, "parsed": None, "tp": tp, "fp": fp, "fn": fn})
        pred = entity_pairs(parsed, self.types)
        tp, fp, fn = overlap(gold, pred)
        f1 = case_f1(tp, fp, fn)
        details = {
            "parseable": True,
            "parsed": {k: [str(v) for v in vs] for k, vs in parsed.items()},
            "tp": tp, "fp": fp, "fn": fn,
            "missed": sorted(f"{k}:{v}" for k, v in gold - pred),
            "spurious": sorted(f"{k}:{v}" for k, v in pred - gold),
        }
        if f1 >= self.pass_f1 - 1e-12:
            return Score(f1, True, None, details)
        return Score(f1, False, f"entity F1 {f1:.2f} < {self.pass_f1:g} (missed {fn}, spurious {fp})", details)

    def aggregate(self, scores: Sequence[Score]) -> dict[str, MetricValue]:
        return f1_metrics(scores)
