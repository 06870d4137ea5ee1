"""Write calibration/medical/calibration.jsonl: invented clinical notes (clinic, emergency, discharge, referral).

Every note is assembled here from condition tables, section templates and word
banks written for this project; patients, clinicians, findings and results are
invented. It shares register with suites/medical but none of its cases or
medications. Doses look plausible but are NOT medical advice. Seeded: rerunning
reproduces the file byte for byte.
Usage: .venv/bin/python -m calibration._generators.medical [--seed 31] [--out DIR]
"""

from __future__ import annotations

import random
from pathlib import Path

from calibration._generators._common import ROOT, build_samples, fill, main, write_set

NAME = "medical"
SEED = 31


def _num(lo: int, hi: int):
    return lambda rng: str(rng.randint(lo, hi))


def _dec(lo: float, hi: float, step: float = 0.1):
    def draw(rng: random.Random) -> str:
        n = rng.randint(0, round((hi - lo) / step))
        return f"{lo + n * step:.1f}"
    return draw


# Each condition: what the patient came with, what was found, what was done. Slots in
# braces are drawn from BANKS (or the condition's own "slots").
CONDITIONS = [
    {
        "name": "community-acquired pneumonia", "admit": True, "min_age": 18, "fever": True, "hr": 12, "rr": 6, "spo2": -4,
        "complaint": "cough and fever",
        "hpi": ["a productive cough with green sputum for {days} days",
                "fevers and sweats at night", "sharp right-sided chest pain when breathing in",
                "increasing shortness of breath on climbing stairs"],
        "negatives": "No haemoptysis, no calf pain and no recent travel.",
        "exam": ["coarse crackles and bronchial breathing at the right base", "dull to percussion at the right base"],
        "tests": ["Chest X-ray shows consolidation in the right lower zone.", "CRP {crp} mg/L, white cell count {wcc} x10^9/L.",
                  "Urea {urea} mmol/L."],
        "assessment": "Right lower lobe community-acquired pneumonia, CURB-65 score {curb}.",
        "plan": ["Doxycycline 200 mg on day one, then 100 mg once daily to complete five days.",
                 "Encourage oral fluids and regular paracetamol for fever.",
                 "Repeat chest X-ray in six weeks to confirm resolution.",
                 "Review in 48 hours, sooner if breathlessness worsens."],
        "slots": {"curb": _num(0, 2)},
    },
    {
        "name": "lower urinary tract infection", "fever": False, "hr": 4, "rr": 0, "spo2": 0,
        "complaint": "burning on passing urine",
        "hpi": ["burning when passing urine for {days} days", "needing to pass urine every hour",
                "mild lower abdominal discomfort", "urine that looks cloudy and smells strong"],
        "negatives": "No loin pain, no rigors and no vaginal discharge.",
        "exam": ["mild suprapubic tenderness", "no renal angle tenderness"],
        "tests": ["Urine dipstick positive for nitrites and leucocytes, negative for blood.",
                  "Midstream urine sent for culture."],
        "assessment": "Uncomplicated lower urinary tract infection.",
        "plan": ["Nitrofurantoin 100 mg modified-release twice daily for three days.",
                 "Increase fluid intake.",
                 "Return if fever, loin pain or vomiting develop.",
                 "Check culture result and change antibiotic if resistant."],
    },
    {
        "name": "acute gout", "min_age": 30, "fever": False, "hr": 6, "rr": 0, "spo2": 0,
        "complaint": "a painful, swollen big toe",
        "hpi": ["sudden severe pain in the right big toe that woke {obj} at night",
                "being unable to bear the weight of the bedsheet on the foot", "a similar but milder episode {months} months ago",
                "drinking more beer than usual over a family celebration"],
        "negatives": "No injury to the foot, no fever and no other joints affected.",
        "exam": ["a hot, red, exquisitely tender right first metatarsophalangeal joint", "no skin breaks around the joint"],
        "tests": ["Serum urate {urate} micromol/L.", "eGFR {egfr} mL/min."],
        "assessment": "Acute gout of the right first metatarsophalangeal joint.",
        "plan": ["Naproxen 500 mg twice daily with food for up to seven days, with lansoprazole 15 mg once daily for stomach protection.",
                 "Rest and elevate the foot; ice packs wrapped in a towel.",
                 "Discuss starting urate-lowering treatment once the flare has settled.",
                 "Repeat serum urate in four to six weeks."],
        "slots": {"urate": _num(420, 610), "egfr": _num(55, 90)},
    },
    {
        "name": "decompensated heart failure", "admit": True, "min_age": 55, "fever": False, "hr": 14, "rr": 6, "spo2": -4,
        "complaint": "worsening breathlessness and ankle swelling",
        "hpi": ["breathlessness on minimal exertion for {days} days", "needing three pillows to sleep",
                "waking at night gasping for breath", "a weight gain of {kg} kg in a week", "both ankles swelling by the evening"],
        "negatives": "No chest pain and no fever.",
        "exam": ["bibasal crackles", "pitting oedema to the mid-shins", "jugular venous pressure raised at 6 cm"],
        "tests": ["NT-proBNP {bnp} ng/L.", "Chest X-ray shows cardiomegaly, upper lobe diversion and small bilateral effusions.",
                  "ECG shows sinus rhythm with no acute changes."],
        "assessment": "Decompensated heart failure with fluid overload.",
        "plan": ["Furosemide 40 mg intravenously twice daily.", "Daily weights and a fluid balance chart.",
                 "Fluid restriction of 1.5 litres a day.", "Monitor renal function and potassium daily.",
                 "Echocardiogram before discharge."],
        "slots": {"kg": _num(2, 5), "bnp": lambda rng: str(rng.randrange(1800, 9000, 50))},
    },
    {
        "name": "new atrial fibrillation", "admit": True, "min_age": 45, "fever": False, "hr": 40, "rr": 2, "spo2": 0,
        "complaint": "palpitations",
        "hpi": ["a fluttering feeling in the chest on and off for {days} days", "feeling light-headed when standing quickly",
                "feeling more tired than usual", "drinking several cups of strong coffee a day"],
        "negatives": "No chest pain, no loss of consciousness and no weakness of the limbs.",
        "exam": ["an irregularly irregular pulse", "heart sounds normal with no murmurs", "chest clear"],
        "tests": ["ECG confirms atrial fibrillation with a ventricular rate of about {afrate} per minute.",
                  "Thyroid function, electrolytes and full blood count sent."],
        "assessment": "New atrial fibrillation, CHA2DS2-VASc score {chads}.",
        "plan": ["Bisoprolol 2.5 mg once daily for rate control.",
                 "Apixaban 5 mg twice daily after discussing stroke risk and bleeding risk.",
                 "Echocardiogram as an outpatient.", "Reduce caffeine and alcohol."],
        "slots": {"afrate": _num(110, 140), "chads": _num(1, 4)},
    },
    {
        "name": "migraine without aura", "fever": False, "hr": 0, "rr": 0, "spo2": 0,
        "complaint": "recurrent headaches",
        "hpi": ["throbbing one-sided headaches about {times} times a month", "nausea and dislike of bright light during attacks",
                "each attack lasting most of a day", "headaches being more likely after poor sleep"],
        "negatives": "No visual aura, no weakness, no change in headache pattern and no headache on waking.",
        "exam": ["normal neurological examination", "fundoscopy normal", "no neck stiffness"],
        "tests": ["No investigations needed at this stage."],
        "assessment": "Migraine without aura.",
        "plan": ["Sumatriptan 50 mg at the onset of an attack, repeated once after two hours if needed.",
                 "Keep a headache diary for eight weeks.", "Limit painkillers to fewer than ten days a month.",
                 "Consider preventive treatment if attacks stay frequent."],
        "slots": {"times": _num(2, 6)},
    },
    {
        "name": "cellulitis of the left lower leg", "admit": True, "penicillin": True, "fever": True, "hr": 10, "rr": 2, "spo2": 0,
        "complaint": "a red, painful leg",
        "hpi": ["redness spreading up the left shin over {days} days", "a small cut from gardening a week ago",
                "the leg feeling hot and tight", "feeling generally unwell"],
        "negatives": "No calf swelling and no previous clots.",
        "exam": ["a warm, tender area of redness on the left shin measuring about {cm} cm across", "no blistering or pus",
                 "the edge of the redness marked with a pen"],
        "tests": ["CRP {crp} mg/L.", "Wound swab not taken as the skin is intact."],
        "assessment": "Cellulitis of the left lower leg without systemic compromise.",
        "plan": ["Flucloxacillin 500 mg four times daily for seven days.", "Keep the leg raised when sitting.",
                 "Return if the redness spreads beyond the pen mark.", "Review in 48 hours."],
        "slots": {"cm": _num(6, 15)},
    },
    {
        "name": "infective exacerbation of COPD", "admit": True, "min_age": 50, "fever": False, "hr": 12, "rr": 8, "spo2": -6,
        "complaint": "more breathless than usual",
        "hpi": ["more breathless than usual for {days} days", "coughing up more sputum, now yellow",
                "using the reliever inhaler every two hours", "a cold that started last week"],
        "negatives": "No chest pain and no ankle swelling.",
        "exam": ["widespread expiratory wheeze", "pursed-lip breathing", "able to speak in full sentences"],
        "tests": ["Peak flow {peak} L/min.", "Arterial blood gas not required as saturations are at target."],
        "assessment": "Infective exacerbation of COPD.",
        "plan": ["Prednisolone 30 mg once daily for five days.", "Doxycycline 100 mg once daily for five days.",
                 "Check inhaler technique.", "Pulmonary rehabilitation referral once recovered."],
        "slots": {"peak": lambda rng: str(rng.randrange(150, 320, 10)),
                  "social": ["Ex-smoker of {packs} pack-years; lives with family.",
                             "Current smoker of {packs} pack-years; lives with {poss} partner."]},
    },
    {
        "name": "mechanical low back pain", "fever": False, "hr": 0, "rr": 0, "spo2": 0,
        "complaint": "low back pain",
        "hpi": ["low back pain since lifting boxes {days} days ago", "pain that is worse on bending and better lying flat",
                "occasional ache into the right buttock", "managing to work but sleeping poorly"],
        "negatives": "No numbness around the saddle area, normal bladder and bowel function, no weight loss and no fever.",
        "exam": ["tenderness of the lower lumbar muscles", "straight leg raise negative on both sides",
                 "normal power, sensation and reflexes in the legs"],
        "tests": ["No imaging needed at present."],
        "assessment": "Mechanical low back pain without red flags.",
        "plan": ["Stay active and avoid bed rest.", "Paracetamol 1 g up to four times daily, with naproxen 250 mg twice daily if needed.",
                 "Referral to physiotherapy.", "Return urgently if numbness, weakness or bladder problems develop."],
    },
    {
        "name": "iron deficiency anaemia", "fever": False, "hr": 8, "rr": 0, "spo2": 0,
        "complaint": "tiredness",
        "hpi": ["feeling tired for {months} months", "getting breathless on hills that used to be easy",
                "a poor appetite for red meat", "being told by family that {pron} looks pale"],
        "negatives": "No black stools, no blood in the stools and no change in bowel habit.",
        "exam": ["conjunctival pallor", "abdomen soft and non-tender"],
        "tests": ["Haemoglobin {hb} g/L, MCV {mcv} fL.", "Ferritin {ferritin} micrograms/L.", "Coeliac serology sent."],
        "assessment": "Iron deficiency anaemia, cause to be established.",
        "plan": ["Ferrous sulfate 200 mg once daily.", "Repeat full blood count in four weeks.",
                 "Consider referral for endoscopy depending on results.", "Dietary advice leaflet given."],
        "slots": {"hb": _num(84, 112), "mcv": _num(68, 78), "ferritin": _num(3, 14)},
    },
    {
        "name": "benign paroxysmal positional vertigo", "fever": False, "hr": 0, "rr": 0, "spo2": 0,
        "complaint": "dizziness",
        "hpi": ["brief spells of spinning when turning over in bed", "each spell lasting less than a minute",
                "nausea during the spells", "symptoms starting {days} days ago"],
        "negatives": "No hearing loss, no tinnitus, no headache and no double vision.",
        "exam": ["Dix-Hallpike test positive on the right", "normal cranial nerves and gait"],
        "tests": ["No investigations needed."],
        "assessment": "Right-sided benign paroxysmal positional vertigo.",
        "plan": ["Epley manoeuvre performed in clinic.", "Home exercises explained.",
                 "Avoid driving until the spells have stopped.", "Review if not settling within four weeks."],
    },
    {
        "name": "shingles", "fever": False, "hr": 4, "rr": 0, "spo2": 0,
        "complaint": "a painful rash",
        "hpi": ["burning pain on the left side of the chest for {days} days", "a blistering rash that appeared two days later",
                "having had chickenpox as a child", "poor sleep because of the pain"],
        "negatives": "No rash near the eye and no weakness.",
        "exam": ["clusters of blisters on a red base in a band around the left chest wall", "the rash does not cross the midline"],
        "tests": ["No investigations needed."],
        "assessment": "Shingles of a left thoracic dermatome.",
        "plan": ["Aciclovir 800 mg five times daily for seven days.", "Paracetamol for pain.",
                 "Keep the rash covered around pregnant women and young babies.", "Return if the pain persists after the rash heals."],
    },
    {
        "name": "inversion sprain of the ankle", "fever": False, "hr": 0, "rr": 0, "spo2": 0,
        "complaint": "an injured ankle",
        "hpi": ["twisting the right ankle stepping off a kerb", "being able to take four steps straight after the injury",
                "swelling over the outside of the ankle", "pain that is worst when walking on uneven ground"],
        "negatives": "No numbness in the foot.",
        "exam": ["swelling and tenderness over the lateral ligaments", "no tenderness over the malleoli or the base of the fifth metatarsal"],
        "tests": ["Ottawa ankle rules negative, so no X-ray needed."],
        "assessment": "Lateral ligament sprain of the right ankle.",
        "plan": ["Rest, ice, compression and elevation for the first few days.", "Paracetamol as needed.",
                 "Gradual return to walking as pain allows.", "Physiotherapy if still unstable after six weeks."],
    },
]

PAST_HISTORY = [  # (condition, long-term medication)
    ("high blood pressure", "ramipril 5 mg once daily"),
    ("type 2 diabetes", "gliclazide 80 mg twice daily"),
    ("raised cholesterol", "simvastatin 20 mg at night"),
    ("osteoarthritis of the knees", "paracetamol 1 g up to four times daily when needed"),
    ("asthma", "salbutamol inhaler two puffs when needed"),
    ("depression, well controlled", "citalopram 20 mg once daily"),
    ("angina", "glyceryl trinitrate spray when needed"),
    ("chronic kidney disease stage 3a", None),
    ("indigestion", "lansoprazole 15 mg once daily"),
    ("an underactive thyroid", "thyroid hormone replacement, dose unchanged for years"),
    ("previous appendicectomy", None),
    ("a fractured wrist ten years ago", None),
]

BANKS = {
    "days": _num(2, 9),
    "months": _num(2, 8),
    "crp": _num(24, 210),
    "wcc": _dec(11.0, 19.5),
    "urea": _dec(4.0, 8.5),
    "allergy": ["No known drug allergies.", "Penicillin (rash).", "No known allergies.", "Codeine (vomiting).",
                "Sticking plaster (skin irritation)."],
    "social": ["Lives with {poss} partner and works as {job}.", "Lives alone in a ground-floor flat; independent with daily activities.",
               "Retired after working as {job}; lives with {poss} daughter.", "Works as {job}; non-smoker; drinks about {units} units of alcohol a week.",
               "Ex-smoker of {packs} pack-years; lives with family."],
    "job": ["a teacher", "a bus driver", "a nurse", "a farmer", "an accountant", "an electrician", "a shop manager", "a chef",
            "a postal worker"],
    "units": _num(0, 20),
    "packs": _num(10, 45),
    "general": ["Alert and comfortable at rest.", "Looks unwell but is talking in full sentences.",
                "Alert, orientated and well hydrated.", "Appears tired and a little pale.", "In obvious discomfort."],
    "clinician": ["Dr {last}", "Dr {last}, registrar", "Nurse practitioner {last}", "Dr {last}, foundation doctor"],
    "last": ["Harrow", "Okafor", "Lindqvist", "Moreau", "Castillo", "Novak", "Sato", "Brennan", "Osei", "Petrov",
             "Duval", "Kowalski", "Tanaka", "Ferreira", "Holm", "Iqbal", "Abbott", "Whitlock"],
    "follow": ["Follow-up in the clinic in {weeks} weeks.", "GP review in {weeks} weeks.",
               "Telephone review in {weeks} weeks.", "No routine follow-up needed; return if not improving."],
    "weeks": _num(1, 6),
    "safety": ["Advised to seek urgent help if {pron} becomes more unwell, confused or short of breath.",
               "Written advice given about warning signs and when to call.",
               "The plan was discussed with the patient, who agrees with it.",
               "Questions answered; the patient is happy with the plan."],
}


def _vitals(rng: random.Random, c: dict) -> str:
    temp = (38.0 + rng.randint(0, 12) / 10) if c["fever"] else (36.3 + rng.randint(0, 8) / 10)
    hr = rng.randint(62, 92) + c["hr"]
    rr = rng.randint(12, 18) + c["rr"]
    spo2 = min(99, rng.randint(95, 99) + c["spo2"])
    sbp, dbp = rng.randint(104, 162), rng.randint(60, 94)
    return (f"Temperature {temp:.1f} °C, pulse {hr} per minute, blood pressure {sbp}/{dbp} mmHg, "
            f"respiratory rate {rr} per minute, oxygen saturation {spo2}% on room air.")


def _sentence_list(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else items[0]


def note(rng: random.Random) -> str:
    """One clinical note (clinic, emergency, discharge or referral letter) about one invented patient."""
    c = rng.choice(CONDITIONS)
    sex = rng.choice(["man", "woman"])
    kind = rng.choice(["clinic", "emergency", "discharge"] if c.get("admit") else ["clinic", "emergency", "referral"])
    drawn = {"pron": "he" if sex == "man" else "she", "obj": "him" if sex == "man" else "her",
             "poss": "his" if sex == "man" else "her", "age": str(rng.randint(c.get("min_age", 19), 91)), "sex": sex,
             "complaint": c["complaint"], "name": c["name"]}
    banks = {**BANKS, **c.get("slots", {})}
    if c.get("penicillin"):  # never a penicillin allergy beside a penicillin plan
        banks["allergy"] = [a for a in BANKS["allergy"] if "Penicillin" not in a]

    def f(template: str) -> str:
        return fill(rng, template, banks, drawn)

    history = rng.sample(PAST_HISTORY, rng.randint(1, 3))
    pmh = "; ".join(h for h, _ in history)
    meds = "; ".join(m for _, m in history if m) or "none regularly"
    hpi = _sentence_list([f(c["hpi"][i]) for i in sorted(rng.sample(range(len(c["hpi"])), rng.randint(3, len(c["hpi"]))))])
    exam = f(_sentence_list(c["exam"]))
    exam = f("{general}") + " " + _vitals(rng, c) + " " + exam[0].upper() + exam[1:] + "."
    tests = " ".join(f(t) for t in c["tests"])
    plan = c["plan"][: rng.randint(3, len(c["plan"]))]

    if kind == "referral":
        return "\n\n".join([
            f("Dear colleague,\n\nThank you for seeing this {age}-year-old {sex}, who came to the surgery with {complaint}."),
            f("{Pron} describes ") + hpi + ". " + c["negatives"],
            f"Background: {pmh}. Current medication: {meds}. Allergies: " + f("{allergy}"),
            "On examination: " + exam,
            "Results so far: " + tests,
            f("My working diagnosis is {name}. So far I have arranged the following. ") + " ".join(plan[:2]),
            f("I would be grateful for your opinion on further management.\n\nYours sincerely,\n{clinician}"),
        ])
    title = {"clinic": "Outpatient clinic note", "emergency": "Emergency department assessment",
             "discharge": "Discharge summary"}[kind]
    ending = (f"Discharged home after {rng.randint(2, 8)} days. " + f("{follow}")
              + " Medication changes have been explained to the patient."
              if kind == "discharge" else f("{safety}") + " " + f("{follow}"))
    return "\n".join([
        f"{title}. " + f("Seen by {clinician}."),
        f("Patient: {age}-year-old {sex}."),
        f("Presenting complaint: {complaint}."),
        f("History: {pron} reports ") + hpi + ". " + c["negatives"],
        f"Past medical history: {pmh}.",
        f"Medication: {meds}.",
        "Allergies: " + f("{allergy}"),
        "Social history: " + f("{social}"),
        "Examination: " + exam,
        "Investigations: " + tests,
        "Assessment: " + f(c["assessment"]),
        "Plan:\n" + "\n".join(f"{i}. {p}" for i, p in enumerate(plan, start=1)),
        ending,
    ])


def texts(seed: int = SEED) -> list[str]:
    return build_samples(random.Random(seed), note, join="\n\n---\n\n")


def generate(out_dir: Path = ROOT / NAME, seed: int = SEED) -> Path:
    """Write ``out_dir/calibration.jsonl`` from ``seed``; the shipped file is ``generate()``."""
    return write_set(out_dir, texts(seed))


if __name__ == "__main__":
    main(__doc__, NAME, generate, SEED)
