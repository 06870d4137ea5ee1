"""Write suites/extraction/cases.jsonl: short invented texts and the JSON fields in them.

All names, companies and events are invented by this script (seeded; rerun to
reproduce byte-for-byte). Usage: .venv/bin/python suites/_generators/make_extraction.py [--seed 2024]
"""

from __future__ import annotations

import random
from pathlib import Path

from _common import run

OUT = Path(__file__).resolve().parents[1] / "extraction" / "cases.jsonl"

FIRST = ["Maria", "James", "Aiko", "Pedro", "Fatima", "Lukas", "Grace", "Ivan", "Nadia", "Tomas", "Elena", "Samuel"]
LAST = ["Lopez", "Carter", "Tanaka", "Silva", "Haddad", "Weber", "Okafor", "Petrov", "Rossi", "Novak", "Meyer", "Dubois"]
CITIES = ["Boston", "Denver", "Lyon", "Porto", "Osaka", "Leeds", "Austin", "Graz", "Turin", "Bergen", "Quebec", "Perth"]
COMPANIES = ["Bluebird Tools", "Northwind Paper", "Sunrise Bakery", "Orbit Bikes", "Maple Print", "Cedar Labs"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def date(rng: random.Random) -> str:
    return f"{rng.choice(MONTHS)} {rng.randint(1, 28)}, {rng.randint(2019, 2025)}"


def easy(rng: random.Random) -> tuple[str, dict]:
    name, city = person(rng), rng.choice(CITIES)
    text = rng.choice([
        f"{name} lives in {city}.",
        f"My name is {name} and I am from {city}.",
        f"{name} moved to {city} last year.",
    ])
    return text, {"name": name, "city": city}


def medium(rng: random.Random) -> tuple[str, dict]:
    name, city, amount = person(rng), rng.choice(CITIES), rng.randint(12, 950)
    text = rng.choice([
        f"{name} paid ${amount} for a bike repair in {city}.",
        f"In {city}, {name} spent ${amount} on groceries.",
        f"{name} from {city} donated ${amount} to the library.",
    ])
    return text, {"name": name, "city": city, "amount": amount}


def hard(rng: random.Random) -> tuple[str, dict]:
    name, city, when = person(rng), rng.choice(CITIES), date(rng)
    company = rng.choice(COMPANIES)
    total = rng.randint(1000, 9000) + rng.choice([0, 0.5, 0.25])
    deposit = rng.randint(50, 400)
    total_text = f"{total:,.2f}"
    text = rng.choice([
        f"On {when}, {name} signed a contract with {company} in {city}. After a ${deposit} deposit, "
        f"the total came to ${total_text}.",
        f"{company} ({city}) invoiced {name} on {when}: ${total_text} in total, of which ${deposit} was paid upfront.",
    ])
    return text, {"name": name, "city": city, "date": when, "company": company, "total": total}


def main() -> None:
    run(__doc__, OUT, 2024, "extract", (easy, medium, hard),
        lambda cid, level, item: {"id": cid, "inputs": {"text": item[0], "fields": ", ".join(item[1])},
                                  "expected": item[1], "tags": {"difficulty": level, "n_fields": len(item[1])}})



if __name__ == "__main__":
    main()
