"""Write suites/medical/cases.jsonl: invented clinical-style notes and their entities.

Every note is assembled by this script from small word lists (seeded; rerun to
reproduce byte-for-byte). No real patient data. Doses and schedules are
plausible-looking but are NOT medical advice.
Usage: .venv/bin/python suites/_generators/make_medical.py [--seed 7]
"""

from __future__ import annotations

import random
from pathlib import Path

from _common import run

OUT = Path(__file__).resolve().parents[1] / "medical" / "cases.jsonl"

# (medication, possible doses, condition it is written for)
DRUGS = [
    ("metformin", ["500 mg", "850 mg", "1000 mg"], "type 2 diabetes"),
    ("lisinopril", ["5 mg", "10 mg", "20 mg"], "hypertension"),
    ("atorvastatin", ["10 mg", "20 mg", "40 mg"], "high cholesterol"),
    ("levothyroxine", ["50 mcg", "75 mcg", "100 mcg"], "hypothyroidism"),
    ("amoxicillin", ["250 mg", "500 mg"], "sinusitis"),
    ("omeprazole", ["20 mg", "40 mg"], "acid reflux"),
    ("sertraline", ["25 mg", "50 mg", "100 mg"], "depression"),
    ("ibuprofen", ["200 mg", "400 mg"], "back pain"),
    ("albuterol", ["90 mcg"], "asthma"),
    ("amlodipine", ["5 mg", "10 mg"], "hypertension"),
]
FREQS = ["once daily", "twice daily", "three times daily", "at bedtime", "as needed"]
AGES = list(range(24, 86))
SEXES = ["man", "woman"]


def entities(drugs: list[tuple[str, str, str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"medications": [], "doses": [], "frequencies": [], "conditions": []}
    for name, dose, freq, cond in drugs:
        for key, value in (("medications", name), ("doses", dose), ("frequencies", freq), ("conditions", cond)):
            if value not in out[key]:
                out[key].append(value)
    return out


def pick(rng: random.Random, k: int) -> list[tuple[str, str, str, str]]:
    chosen = rng.sample(DRUGS, k)
    return [(n, rng.choice(doses), rng.choice(FREQS), cond) for n, doses, cond in chosen]


def easy(rng: random.Random) -> tuple[str, dict]:
    [(n, d, f, c)] = pick(rng, 1)
    text = rng.choice([
        f"Diagnosis: {c}. Plan: {n} {d} {f}.",
        f"Patient has {c}. Started {n} {d} {f}.",
    ])
    return text, entities([(n, d, f, c)])


def medium(rng: random.Random) -> tuple[str, dict]:
    [(n, d, f, c)] = pick(rng, 1)
    age, sex = rng.choice(AGES), rng.choice(SEXES)
    text = rng.choice([
        f"{age}-year-old {sex} seen for follow-up of {c}. Reports feeling better. Continue {n} {d} {f}.",
        f"{age}-year-old {sex} with a history of {c}. Vitals stable. Prescribed {n} {d}, to be taken {f}.",
    ])
    return text, entities([(n, d, f, c)])


def hard(rng: random.Random) -> tuple[str, dict]:
    drugs = pick(rng, 2)
    (n1, d1, f1, c1), (n2, d2, f2, c2) = drugs
    age, sex = rng.choice(AGES), rng.choice(SEXES)
    text = (f"{age}-year-old {sex} with {c1} and {c2}. Takes {n1} {d1} {f1}. "
            f"Add {n2} {d2} {f2}. No known allergies.")
    return text, entities(drugs)


def main() -> None:
    run(__doc__, OUT, 7, "med", (easy, medium, hard),
        lambda cid, level, item: {"id": cid, "inputs": {"note": item[0]},
                                  "expected": item[1], "tags": {"difficulty": level}})



if __name__ == "__main__":
    main()
