"""Write calibration/arithmetic/calibration.jsonl: worked arithmetic word problems and short explanations.

Each problem is built here from a family below with seeded numbers; every number
in a solution is computed by this script (money in whole cents), so the worked
steps are right. Names, items and phrasings come from small banks written for
this project. Seeded: rerunning reproduces the file byte for byte.
Usage: .venv/bin/python -m calibration._generators.arithmetic [--seed 1234] [--out DIR]
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from calibration._generators._common import ROOT, build_samples, main, write_set

NAME = "arithmetic"
SEED = 1234

NAMES = ["Amira", "Ben", "Chloe", "Dev", "Elif", "Farid", "Grace", "Hugo", "Isla", "Jamal", "Kira", "Leo",
         "Mina", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tara", "Uma", "Viktor", "Wen", "Yara"]
ITEMS = [("notebook", "notebooks"), ("pen", "pens"), ("loaf of bread", "loaves of bread"), ("ticket", "tickets"),
         ("bag of rice", "bags of rice"), ("plant pot", "plant pots"), ("mug", "mugs"), ("packet of seeds", "packets of seeds")]
OPENERS = ["Problem: ", "Question: ", "Word problem. ", "Example: ", ""]
SOLVERS = ["Solution: ", "Working: ", "Step by step: ", "Explanation: "]

Family = Callable[[random.Random], str]
FAMILIES: list[Family] = []


def family(fn: Family) -> Family:
    FAMILIES.append(fn)
    return fn


def money(cents: int, symbol: str = "$") -> str:
    return f"{symbol}{cents // 100}.{cents % 100:02d}"


def signed(n: int) -> str:
    """An integer with a true minus sign, as in the worked steps (−5, not -5)."""
    return f"−{-n}" if n < 0 else str(n)


def problem(rng: random.Random, question: str, steps: list[str], answer: str) -> str:
    """A question, its worked steps and the final answer, in one of a few layouts."""
    layout = rng.randint(0, 2)
    if layout == 0:
        return f"{rng.choice(OPENERS)}{question}\n{rng.choice(SOLVERS)}{' '.join(steps)} The answer is {answer}."
    if layout == 1:
        numbered = "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, start=1))
        return f"{rng.choice(OPENERS)}{question}\n{numbered}\nAnswer: {answer}."
    return f"{question} {' '.join(steps)} So the answer is {answer}."


@family
def change(rng: random.Random) -> str:
    name, (_, many) = rng.choice(NAMES), rng.choice(ITEMS)
    n, price = rng.randint(2, 9), rng.randrange(45, 1500, 5)
    total = n * price
    note = next(v for v in (500, 1000, 2000, 5000, 10000, 20000) if v >= total)
    sym = rng.choice(["$", "€", "£"])
    return problem(rng,
                   f"{name} buys {n} {many} at {money(price, sym)} each and pays with a {money(note, sym)} note. How much change does {name} get?",
                   [f"First find the total cost: {n} × {money(price, sym)} = {money(total, sym)}.",
                    f"Then subtract it from the amount paid: {money(note, sym)} − {money(total, sym)} = {money(note - total, sym)}."],
                   money(note - total, sym))


@family
def unit_price(rng: random.Random) -> str:
    _, many = rng.choice(ITEMS)
    a_n, b_n = rng.sample([2, 3, 4, 5, 6, 8, 10, 12], 2)
    a_each, b_each = rng.sample(range(30, 400, 5), 2)
    a_cost, b_cost = a_n * a_each, b_n * b_each
    better = "the first pack" if a_each < b_each else "the second pack"
    return problem(rng,
                   f"A shop sells a pack of {a_n} {many} for {money(a_cost)} and a pack of {b_n} {many} for {money(b_cost)}. Which pack is better value?",
                   [f"Work out the price of one item in each pack. First pack: {money(a_cost)} ÷ {a_n} = {money(a_each)} each.",
                    f"Second pack: {money(b_cost)} ÷ {b_n} = {money(b_each)} each.",
                    f"{money(min(a_each, b_each))} is less than {money(max(a_each, b_each))}, so {better} costs less per item."],
                   better)


@family
def discount(rng: random.Random) -> str:
    item = rng.choice(["jacket", "bicycle", "lamp", "pair of boots", "kettle", "backpack", "desk chair"])
    price = rng.randrange(20, 400)  # whole units: price × percent is a whole number of cents
    pct = rng.choice([10, 15, 20, 25, 30, 40, 50])
    off = price * pct  # cents
    return problem(rng,
                   f"A {item} costs {money(price * 100)}. In the sale it is {pct}% off. What is the sale price?",
                   [f"{pct}% of {money(price * 100)} is {price} × {pct} ÷ 100 = {money(off)}.",
                    f"Subtract the discount: {money(price * 100)} − {money(off)} = {money(price * 100 - off)}."],
                   money(price * 100 - off))


@family
def distance(rng: random.Random) -> str:
    who = rng.choice(["A train", "A cyclist", "A delivery van", "A ferry", "A bus"])
    speed = rng.randrange(12, 120, 4)
    hours, minutes = rng.randint(1, 4), rng.choice([15, 30, 45])
    quarters = hours * 4 + minutes // 15
    dist = speed * quarters / 4
    dist_text = f"{dist:g}"
    return problem(rng,
                   f"{who} travels at a steady {speed} km/h for {hours} hours and {minutes} minutes. How far does it go?",
                   [f"{minutes} minutes is {minutes} ÷ 60 = {minutes / 60:g} of an hour, so the time is {hours + minutes / 60:g} hours.",
                    f"Distance = speed × time = {speed} × {hours + minutes / 60:g} = {dist_text} km."],
                   f"{dist_text} km")


@family
def split_bill(rng: random.Random) -> str:
    people = rng.randint(2, 8)
    tip = rng.choice([10, 15, 20])
    while True:
        bill = rng.randrange(20, 300)
        total = bill * (100 + tip)  # cents
        if total % people == 0:
            break
    return problem(rng,
                   f"{people} friends share a restaurant bill of {money(bill * 100)} and add a {tip}% tip. If they split the total equally, how much does each person pay?",
                   [f"The tip is {tip}% of {money(bill * 100)} = {money(bill * tip)}.",
                    f"The total is {money(bill * 100)} + {money(bill * tip)} = {money(total)}.",
                    f"Each person pays {money(total)} ÷ {people} = {money(total // people)}."],
                   money(total // people))


@family
def average(rng: random.Random) -> str:
    name = rng.choice(NAMES)
    k = rng.randint(4, 6)
    scores = [rng.randint(50, 100) for _ in range(k)]
    scores[-1] -= sum(scores) % k  # make the mean a whole number
    total = sum(scores)
    what = rng.choice(["test scores", "points in each game", "minutes of practice each day"])
    return problem(rng,
                   f"{name}'s {what} were {', '.join(map(str, scores[:-1]))} and {scores[-1]}. What is the mean?",
                   [f"Add them up: {' + '.join(map(str, scores))} = {total}.",
                    f"There are {k} values, so the mean is {total} ÷ {k} = {total // k}."],
                   str(total // k))


@family
def rectangle(rng: random.Random) -> str:
    w, h = rng.randint(3, 25), rng.randint(3, 25)
    cost = rng.choice([4, 5, 6, 8, 12, 15])
    place = rng.choice(["garden", "vegetable patch", "playground", "yard", "paddock"])
    area, perim = w * h, 2 * (w + h)
    return problem(rng,
                   f"A rectangular {place} is {w} m long and {h} m wide. Find its area, and the cost of fencing all the way round at ${cost} per metre.",
                   [f"Area = length × width = {w} × {h} = {area} square metres.",
                    f"Perimeter = 2 × ({w} + {h}) = 2 × {w + h} = {perim} m.",
                    f"Fencing costs {perim} × ${cost} = ${perim * cost}."],
                   f"{area} square metres and ${perim * cost}")


@family
def clock(rng: random.Random) -> str:
    start = rng.randint(6 * 60, 20 * 60)
    dur = rng.randint(25, 200)
    end = start + dur
    def hm(t: int) -> str:
        return f"{t // 60 % 24:02d}:{t % 60:02d}"
    event = rng.choice(["A film", "A train journey", "A football match", "A cooking class", "A concert"])
    return problem(rng,
                   f"{event} starts at {hm(start)} and lasts {dur} minutes. When does it end?",
                   [f"{dur} minutes is {dur // 60} hour{'s' if dur // 60 != 1 else ''} and {dur % 60} minutes.",
                    f"Add that to {hm(start)}: {hm(start)} + {dur // 60}:{dur % 60:02d} = {hm(end)}."],
                   hm(end))


@family
def fraction_of(rng: random.Random) -> str:
    den = rng.choice([3, 4, 5, 6, 8, 10])
    num = rng.randint(1, den - 1)
    whole = den * rng.randint(3, 20)
    group = rng.choice(["students in a class", "seats on a bus", "apples in a crate", "pages in a book", "runners in a race"])
    part = whole // den * num
    return problem(rng,
                   f"There are {whole} {group}. What is {num}/{den} of them?",
                   [f"First find 1/{den}: {whole} ÷ {den} = {whole // den}.",
                    f"Then multiply by {num}: {whole // den} × {num} = {part}."],
                   str(part))


@family
def ratio(rng: random.Random) -> str:
    a, b = rng.sample(range(1, 8), 2)
    unit = rng.randint(2, 30)
    total = (a + b) * unit
    x, y = rng.sample(NAMES, 2)
    what = rng.choice(["sweets", "stickers", "marbles", "euros", "cards"])
    return problem(rng,
                   f"{x} and {y} share {total} {what} in the ratio {a}:{b}. How many does each get?",
                   [f"The ratio has {a} + {b} = {a + b} parts.",
                    f"One part is {total} ÷ {a + b} = {unit}.",
                    f"{x} gets {a} × {unit} = {a * unit} and {y} gets {b} × {unit} = {b * unit}.",
                    f"Check: {a * unit} + {b * unit} = {total}."],
                   f"{x} {a * unit}, {y} {b * unit}")


@family
def interest(rng: random.Random) -> str:
    principal = rng.randrange(500, 20000, 100)
    rate = rng.choice([2, 3, 4, 5, 6])
    years = rng.randint(2, 6)
    yearly = principal * rate  # cents
    return problem(rng,
                   f"{rng.choice(NAMES)} puts ${principal} in a savings account that pays {rate}% simple interest a year. How much interest is earned in {years} years?",
                   [f"One year's interest is {rate}% of ${principal} = {money(yearly)}.",
                    f"Over {years} years: {money(yearly)} × {years} = {money(yearly * years)}."],
                   money(yearly * years))


@family
def temperature(rng: random.Random) -> str:
    start = rng.randint(-15, 5)
    rise = rng.randint(3, 20)
    drop = rng.randint(2, 15)
    mid, end = start + rise, start + rise - drop
    place = rng.choice(["in a mountain village", "at the weather station", "in a town in the far north"])
    return problem(rng,
                   f"At dawn the temperature {place} was {signed(start)}°C. By noon it had risen by {rise} degrees, and by midnight it had fallen by {drop} degrees from the noon value. What was the midnight temperature?",
                   [f"Noon: {signed(start)} + {rise} = {signed(mid)}°C.", f"Midnight: {signed(mid)} − {drop} = {signed(end)}°C."],
                   f"{signed(end)}°C")


@family
def scaling(rng: random.Random) -> str:
    base = rng.choice([2, 4, 6])
    target = rng.choice([t for t in (3, 5, 8, 9, 10, 12) if t != base])
    ing, per = rng.choice([("flour", 50), ("milk", 25), ("sugar", 30), ("rice", 40), ("butter", 10)])
    amount = per * base * rng.randint(1, 3)
    one = amount / base
    scaled = one * target
    unit = "ml" if ing == "milk" else "g"
    return problem(rng,
                   f"A recipe for {base} people uses {amount} {unit} of {ing}. How much is needed for {target} people?",
                   [f"For one person: {amount} ÷ {base} = {one:g} {unit}.", f"For {target} people: {one:g} × {target} = {scaled:g} {unit}."],
                   f"{scaled:g} {unit}")


@family
def long_multiplication(rng: random.Random) -> str:
    a, b = rng.randint(12, 99), rng.randint(12, 99)
    tens, ones = b // 10 * 10, b % 10
    return problem(rng,
                   f"Work out {a} × {b} without a calculator.",
                   [f"Split {b} into {tens} and {ones}.", f"{a} × {tens} = {a * tens}.", f"{a} × {ones} = {a * ones}.",
                    f"Add the two parts: {a * tens} + {a * ones} = {a * b}."],
                   str(a * b))


@family
def boxes(rng: random.Random) -> str:
    per = rng.randint(6, 24)
    total = rng.randint(per * 2, per * 15)
    while total % per == 1:  # keep "boxes" and "{thing}" plural
        total += 1
    full, left = divmod(total, per)
    needed = full + (1 if left else 0)
    thing = rng.choice(["eggs", "cupcakes", "books", "jars", "light bulbs"])
    steps = [f"{total} ÷ {per} = {full} remainder {left}.", f"That fills {full} boxes"]
    steps[-1] += f" and leaves {left} {thing} over, which need one more box." if left else " exactly, with nothing left over."
    return problem(rng,
                   f"A box holds {per} {thing}. How many boxes are needed to pack {total} {thing}?",
                   steps, f"{needed} boxes")


@family
def savings(rng: random.Random) -> str:
    name = rng.choice(NAMES)
    weekly = rng.randrange(5, 40)
    goal = rng.randrange(60, 600, 5)
    have = rng.randrange(0, goal // 2, 5)
    need = goal - have
    weeks = -(-need // weekly)
    thing = rng.choice(["a bicycle", "a guitar", "a tent", "new headphones", "a telescope"])
    return problem(rng,
                   f"{name} wants {thing} that costs ${goal}, has saved ${have} already and saves ${weekly} a week. How many weeks until {name} can buy it?",
                   [f"Still needed: ${goal} − ${have} = ${need}.", f"${need} ÷ ${weekly} = {need / weekly:.2f} weeks.",
                    f"Part of a week is not enough, so round up to {weeks} weeks."
                    if need % weekly else f"That is exactly {weeks} weeks."],
                   f"{weeks} weeks")


@family
def order_of_operations(rng: random.Random) -> str:
    a, b, c = rng.randint(2, 30), rng.randint(2, 9), rng.randint(2, 9)
    e = rng.randint(2, 9)
    d = e * rng.randint(2, 12)
    result = a + b * c - d // e
    return problem(rng,
                   f"Evaluate {a} + {b} × {c} − {d} ÷ {e}.",
                   ["Multiplication and division come before addition and subtraction.",
                    f"{b} × {c} = {b * c} and {d} ÷ {e} = {d // e}.",
                    f"Then work from left to right: {a} + {b * c} = {a + b * c}, and {a + b * c} − {d // e} = {result}."],
                   str(result))


@family
def ages(rng: random.Random) -> str:
    x, y = rng.sample(NAMES, 2)
    young = rng.randint(4, 30)
    gap = rng.randint(1, 25)
    total = 2 * young + gap
    return problem(rng,
                   f"{x} is {gap} years older than {y}. Together their ages add up to {total}. How old is each?",
                   [f"Take away the difference: {total} − {gap} = {total - gap}. That is twice {y}'s age.",
                    f"{y} is {total - gap} ÷ 2 = {young}, and {x} is {young} + {gap} = {young + gap}."],
                   f"{x} {young + gap} and {y} {young}")


@family
def conversion(rng: random.Random) -> str:
    kind = rng.randint(0, 2)
    if kind == 0:
        m = rng.randrange(250, 20000, 50)
        return problem(rng, f"How many kilometres is {m} metres?",
                       ["There are 1000 metres in a kilometre.", f"{m} ÷ 1000 = {m / 1000:g}."], f"{m / 1000:g} km")
    if kind == 1:
        mins = rng.randint(70, 600)
        return problem(rng, f"Write {mins} minutes in hours and minutes.",
                       [f"{mins} ÷ 60 = {mins // 60} remainder {mins % 60}."], f"{mins // 60} hours {mins % 60} minutes")
    kg = rng.randint(2, 40) / 4
    return problem(rng, f"A parcel weighs {kg:g} kg. How many grams is that?",
                   ["There are 1000 grams in a kilogram.", f"{kg:g} × 1000 = {int(kg * 1000)}."], f"{int(kg * 1000)} g")


# Short explanations of mental-arithmetic tricks, each with a worked example.
@family
def trick(rng: random.Random) -> str:
    kind = rng.randint(0, 3)
    if kind == 0:
        n = rng.randrange(4, 400, 4)
        return (f"Multiplying by 25 is the same as multiplying by 100 and dividing by 4, because 25 = 100 ÷ 4. "
                f"For example, {n} × 25 = {n} × 100 ÷ 4 = {n * 100} ÷ 4 = {n * 25}.")
    if kind == 1:
        n = rng.randint(12, 99)
        return (f"To multiply by 9, multiply by 10 and take away the number once. "
                f"For example, {n} × 9 = {n} × 10 − {n} = {n * 10} − {n} = {n * 9}.")
    if kind == 2:
        n = rng.randint(11, 99)
        t, o = divmod(n, 10)
        return (f"To multiply a two-digit number by 11, add its digits and put the sum in the middle, carrying if the sum is 10 or more. "
                f"For {n}: {t} + {o} = {t + o}, so {n} × 11 = {n * 11}.")
    n = rng.randint(2, 9)
    return (f"To square a number near 50, use (50 + d)² = 2500 + 100d + d². "
            f"For example, {50 + n}² = 2500 + {100 * n} + {n * n} = {(50 + n) ** 2}, and "
            f"{50 - n}² = 2500 − {100 * n} + {n * n} = {(50 - n) ** 2}.")


def part(rng: random.Random) -> str:
    return rng.choice(FAMILIES)(rng)


def texts(seed: int = SEED) -> list[str]:
    return build_samples(random.Random(seed), part)


def generate(out_dir: Path = ROOT / NAME, seed: int = SEED) -> Path:
    """Write ``out_dir/calibration.jsonl`` from ``seed``; the shipped file is ``generate()``."""
    return write_set(out_dir, texts(seed))


if __name__ == "__main__":
    main(__doc__, NAME, generate, SEED)
