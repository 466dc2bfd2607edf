"""Write the Quillon Instruments project (bench/projects/quillon_instruments) from its fact table.

    python bench/projects/_make/make_quillon.py

Deterministic: the same files every time. The facts are in quillon_facts.py and quillon_docs.V,
the document texts in quillon_docs.py, the training rows in quillon_rows.py, and the evalset
below; change a figure in one place and every document, row and question follows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from quillon_docs import DOCUMENTS, V  # noqa: E402
from quillon_facts import BANDS, PRODUCTS, SITES, SLA  # noqa: E402
from quillon_rows import rows  # noqa: E402

OUT = HERE.parent / "quillon_instruments"
DATASET = "quillon_kb.jsonl"
EVALSET = "quillon"

P = {p["model"]: p for p in PRODUCTS}
S = {s["site"]: s for s in SITES}
SL = {p: (name, std, prem) for p, name, _d, std, prem in SLA}
B = {b: (meal, hotel) for b, _c, meal, hotel in BANDS}
DS = "datasheet-{}.md".format
SITE = "site-{}.md".format
HB, TR, IT, HS = "employee-handbook.md", "travel-and-expenses-policy.md", "it-and-security-policy.md", "health-and-safety.md"
SLA_DOC, CAL, CATALOGUE, GUIDE = "customer-support-service-levels.md", "calibration-service.md", "product-catalogue.md", "field-measurement-guide.md"

# (id, question, reference answer, keywords, source) — "" source: only the dataset states it
TRAINED = [
    ("t01", "I want to buy a QT-40 dual-channel thermometer. What will it cost before tax?", f"EUR {P['QT-40']['price']}.", [P["QT-40"]["price"]], DS("qt-40")),
    ("t02", "Up to how many decibels can the SV-2 measure?", f"{P['SV-2']['range']}.", [P["SV-2"]["range_kw"]], DS("sv-2")),
    ("t03", "To within how much relative humidity is the HX-5 accurate?", f"{P['HX-5']['acc']}.", [P["HX-5"]["acc_kw"]], DS("hx-5")),
    ("t04", "What does the PM-310 particle monitor weigh, in grams?", f"{P['PM-310']['weight']} g.", [P["PM-310"]["weight"]], DS("pm-310")),
    ("t05", "Roughly how many hours of use do I get from the CL-8 on one set of batteries?", f"About {P['CL-8']['hours']} hours.", [f"{P['CL-8']['hours']} h"], DS("cl-8")),
    ("t06", "How many years of warranty come with a QT-40?", f"{P['QT-40']['warranty']} years.", [f"{P['QT-40']['warranty']} year|three year"], DS("qt-40")),
    ("t07", "What does Quillon charge to calibrate an SV-2 sound level meter?", f"EUR {P['SV-2']['cal_price']} with a factory certificate.", [P["SV-2"]["cal_price"]], DS("sv-2")),
    ("t08", "At what times is someone at the front desk of the Kessany office?", f"{S['Kessany']['reception']} on working days.", ["08:00|8:00", "17:30"], SITE("kessany")),
    ("t09", "How many car parking places does the Saint Brivel factory have?", f"{S['Saint Brivel']['parking']} spaces.", [S["Saint Brivel"]["parking"]], SITE("saint-brivel")),
    ("t10", "A customer with Premium support logs a high-priority (P2) ticket. How soon will support respond?", f"Within {SL['P2'][2]}.", ["4 hours|four hours"], SLA_DOC),
    ("t11", "For a full day away in a band B city, what meal allowance do I receive?", f"EUR {B['B'][0]} per day.", [B["B"][0]], TR),
    ("t12", "I have 12 years of service. How many days of annual leave do I get?", "28 days.", ["28 days"], HB),
    ("t13", "What is the per-kilometre rate for using my private car on a business trip?", f"{V['mileage']}.", ["0.31"], TR),
    ("t14", "How many weeks of fully paid leave does a birth parent get?", f"{V['birth']}.", ["20 weeks|twenty weeks"], HB),
    ("t15", "Within how much time must I report a stolen company phone, and to whom?", f"Within {V['incident']}, to the IT helpdesk on extension {V['helpdesk']}.", ["1 hour|one hour|60 minutes"], IT),
    ("t16", "Up to what value can the bike I lease through my salary be?", "Up to EUR 2,500.", ["2,500|2500"], ""),
    ("t17", "Where can I order software for my laptop myself?", "In the IT self-service portal, Fixit.", ["Fixit"], ""),
    ("t18", "At what time does the staff running club set off on Wednesdays?", "At 12:15, from the Harnlow entrance.", ["12:15"], ""),
    ("t19", "What is the name of the staff wireless network at the Harnlow site?", "QI-Staff.", ["QI-Staff"], ""),
]

DOCUMENT_ONLY = [
    ("d01", "What IP rating does the QT-20 have?", f"{P['QT-20']['ip']}.", [P["QT-20"]["ip"]], DS("qt-20")),
    ("d02", "How many readings can the QT-40 store in its memory?", f"{P['QT-40']['memory']}.", ["20,000|20000"], DS("qt-40")),
    ("d03", "How often should an HX-5 be calibrated?", f"Every {P['HX-5']['cal_months']} months.", [f"{P['HX-5']['cal_months']} months"], DS("hx-5")),
    ("d04", "In which year was the SV-2 launched?", f"{P['SV-2']['launch']}.", [P["SV-2"]["launch"]], DS("sv-2")),
    ("d05", "How wide is the jaw of the CL-8 clamp meter?", "42 mm.", ["42 mm|42mm"], DS("cl-8")),
    ("d06", "What does the acoustic calibrator for the SV-2 cost?", "EUR 389.", ["389"], CATALOGUE),
    ("d07", "How much is the weather hood for outdoor use of the PM-310?", "EUR 145.", ["145"], CATALOGUE),
    ("d08", "How long is the walk from Harnlow Central station to the head office?", f"{S['Harnlow']['walk']} minutes.", ["8 minute|eight minute"], SITE("harnlow")),
    ("d09", "Where do people gather after a fire alarm at the Saint Brivel factory?", f"At {S['Saint Brivel']['assembly']}.", ["sports field"], SITE("saint-brivel")),
    ("d10", "What are the lunch vouchers in Kessany worth?", "EUR 9.50 per working day on site.", ["9.50"], SITE("kessany")),
    ("d11", "When does the staff restaurant in Harnlow serve lunch?", f"{S['Harnlow']['canteen']}, Monday to Friday.", ["11:30", "14:00"], SITE("harnlow")),
    ("d12", "With standard support, how quickly is a critical P1 ticket answered?", f"Within {SL['P1'][1]}.", ["8 business hours"], SLA_DOC),
    ("d13", "What is the most I can spend on one hotel night in Valmora?", f"EUR {B['A'][1]} (band A).", [B["A"][1]], TR),
    ("d14", "How many extra hours can be carried into the next month?", "Up to 20 extra hours.", ["20 extra hours|20 hours"], HB),
    ("d15", "After five years of service, how long is the company's notice period?", f"{V['notice_company_long']}.", ["3 months|three months"], HB),
    ("d16", "How many hours a month do works council members get for council work?", "12 hours a month.", ["12 hours|twelve hours"], HB),
    ("d17", "What is the monthly limit of the corporate card?", f"{V['card_limit']} per month.", ["7,500|7500"], TR),
    ("d18", "How often may a signed declaration replace a lost receipt?", f"At most {V['lost_receipts']}.", ["three times a year|3 times a year"], TR),
    ("d19", "At what time do company laptops back up the documents folder?", f"Every night at {V['backup']}.", ["01:00|1:00 am|1 am|1am"], IT),
    ("d20", "From what noise level is hearing protection required at work?", f"{V['hearing']}.", ["80 dB|80 decibel"], HS),
    ("d21", "What is the most an employee under 18 may lift?", f"{V['lift_young']}.", ["15 kg|15kg"], HS),
    ("d22", "How soon after finishing an expensive course can leaving the company mean repaying part of it?", f"Within {V['repay_months']} of finishing a course that cost more than {V['repay_over']}.", ["24 months"], "training-and-development.md"),
    ("d23", "How long before a calibration is due does the reminder email arrive?", f"{V['cal_reminder']}.", ["21 days|three weeks"], CAL),
    ("d24", "How long should the HX-5 acclimatise after moving between places with very different temperatures?", f"{V['acclimatise']}.", ["15 minutes"], GUIDE),
    ("d25", "By how much may the SV-2's calibrator checks before and after a session differ before the measurements are invalid?", f"{V['sound_dev']}.", ["0.5 dB|0.5 decibel"], GUIDE),
    ("d26", "How long does the PM-310's daily zero check take?", f"{V['zero_seconds']}.", ["60 seconds|one minute|1 minute"], GUIDE),
    ("d27", "What core temperature should cooked food reach?", f"At least {V['food_core']}.", ["75 °C|75°C|75 degrees"], GUIDE),
    ("d28", "Which days is the company closed for the year-end closure of 2027?", f"{V['closure_days']}.", ["28", "29", "30 December"], "holiday-calendar-2027.md"),
    ("d29", "Since which year has the Saint Brivel calibration laboratory been accredited to ISO/IEC 17025?", f"{V['iso17025']}.", [V["iso17025"]], "company-overview.md"),
    ("d30", "What was Quillon's revenue in 2025?", f"{V['revenue']}.", ["212"], "company-overview.md"),
    ("d31", "What operating profit did Quillon make in 2025?", f"{V['op_profit']}.", ["23.4"], "annual-report-2025.md"),
    ("d32", "How many calibrations did the laboratory carry out in 2025?", f"{V['calibrations']}.", ["61,500|61500"], "annual-report-2025.md"),
    ("d33", "How much storage space does the new warehouse extension at Saint Brivel add?", f"{V['warehouse']}.", ["4,200|4200"], "annual-report-2025.md"),
    ("d34", "What profit share did each employee receive for 2025?", f"{V['profit_share']}, paid with the March salary.", ["1,350|1350"], "annual-report-2025.md"),
    ("d35", "What allowance do engineers on the standby rota get per day?", f"{V['standby']}.", ["47"], HB),
]

UNANSWERABLE = [
    ("u01", "What is the list price of the QT-60 thermometer?", CATALOGUE),
    ("u02", "What IP rating does the surface probe adapter of the QT-20 have?", CATALOGUE),
    ("u03", "What is the hotel limit per night in travel band E?", TR),
    ("u04", "How many motorbike parking spaces does the Kessany office have?", SITE("kessany")),
    ("u05", "Which hotel chain does TravelDesk use in Valmora?", TR),
    ("u06", "How many sick days did Quillon employees take in 2025?", HB),
    ("u07", "What is the battery life of the QT-40 with the backlight switched on?", DS("qt-40")),
    ("u08", "Who is the site manager of the Valmora office?", "company-overview.md"),
    ("u09", "How much does the company pay towards childcare?", HB),
    ("u10", "How many people work in the night team at Saint Brivel?", SITE("saint-brivel")),
    ("u11", "How much did Quillon spend on advertising in 2025?", "annual-report-2025.md"),
    ("u12", "What will the HX-7 cost?", "annual-report-2025.md"),
]


def main(out: Path = OUT) -> None:
    """Write the project's documents, dataset and evalset under ``out`` (project.json is kept by hand)."""
    OUT = Path(out)
    (OUT / "documents").mkdir(parents=True, exist_ok=True)
    (OUT / "datasets").mkdir(exist_ok=True)
    (OUT / "evalsets").mkdir(exist_ok=True)
    for name, make in DOCUMENTS.items():
        (OUT / "documents" / name).write_text(make().rstrip() + "\n", encoding="utf-8")
    pairs, _ = rows()
    with open(OUT / "datasets" / DATASET, "w", encoding="utf-8") as f:
        for q, a in pairs:
            f.write(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]},
                               ensure_ascii=False) + "\n")
    with open(OUT / "evalsets" / f"{EVALSET}.jsonl", "w", encoding="utf-8") as f:
        for kind, items in (("trained", TRAINED), ("documents", DOCUMENT_ONLY)):
            for i, q, a, kws, src in items:
                d = {"id": i, "question": q, "answer": a, "keywords": kws}
                if src:
                    d["source"] = src
                d.update(answerable=True, kind=kind)
                if not src:
                    d["lineage"] = {"dataset": DATASET, "only_in": "dataset"}
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
        for i, q, src in UNANSWERABLE:
            f.write(json.dumps({"id": i, "question": q, "answer": "", "source": src, "answerable": False,
                                "kind": "unanswerable"}, ensure_ascii=False) + "\n")
    print(f"{OUT}: {len(DOCUMENTS)} documents, {len(pairs)} rows, "
          f"{len(TRAINED) + len(DOCUMENT_ONLY) + len(UNANSWERABLE)} questions")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
