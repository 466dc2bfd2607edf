"""Training rows of the Quillon Instruments project: question phrasings and answers per fact.

Structured facts (products, sites, service levels, travel bands, leave) take 2 or 3 of several
question phrasings, chosen with a fixed seed; the evalset's paraphrases of them use phrasings
kept out of training (EVAL_PHRASINGS in make_quillon.py). Policy facts are written by hand.
"""

import random

from quillon_docs import V
from quillon_facts import BANDS, LEAVE, PRODUCTS, SITES, SLA

PRODUCT_Q = {
    "price": (["How much does the {model} cost?", "What is the price of the {model}?",
               "What's the list price of the {model} {type}?", "What does a {model} sell for?", "How much is a {model}?"],
              ["The {model} {type} costs EUR {price} (list price, before tax).",
               "The list price of the {model} is EUR {price} before tax."]),
    "range": (["What is the measuring range of the {model}?", "What range can the {model} measure?",
               "From what to what does the {model} measure?", "What are the measurement limits of the {model}?"],
              ["The {model} measures {range}.", "Its measuring range is {range}."]),
    "acc": (["How accurate is the {model}?", "What is the accuracy of the {model} {type}?",
             "What accuracy does the {model} have?", "How precise are the readings of the {model}?"],
            ["The {model} is accurate to {acc} at 23 °C.", "Accuracy of the {model}: {acc} (at 23 °C)."]),
    "weight": (["How much does the {model} weigh?", "What is the weight of the {model}?", "How many grams does the {model} weigh?", "How heavy is the {model}?"],
               ["The {model} weighs {weight} g, batteries included.", "It weighs {weight} g including batteries."]),
    "battery": (["How long does the battery of the {model} last?", "What is the battery life of the {model}?",
                 "How many hours does the {model} run before it needs new batteries or a charge?", "What does the {model} run on?"],
                ["The {model} runs on {battery} for about {hours} hours of continuous use.",
                 "About {hours} hours of continuous use, on {battery}."]),
    "what": (["What is the {model}?", "What is the {model} used for?", "What kind of instrument is the {model}?",
              "Tell me about the Quillon {model}."],
             ["The {model} is Quillon's {type}: {pitch}."]),
    "warranty": (["What warranty does the {model} have?", "How long is the {model} under warranty?",
                  "For how many years is the {model} guaranteed?", "Is the {model} still covered after two years?"],
                 ["The {model} has a {warranty}-year warranty from delivery; batteries, probes and filter caps are wear parts and not covered."]),
    "cal_price": (["How much does it cost to calibrate a {model}?", "What do you charge for calibrating the {model}?",
                   "What is the calibration price for the {model}?", "What will a factory calibration of my {model} cost?"],
                  ["Calibrating the {model} at our Saint Brivel laboratory costs EUR {cal_price} with a factory certificate."]),
}

SITE_Q = {
    "reception": (["When is reception open at the {site} site?", "What are the reception hours in {site}?",
                   "When can visitors sign in at {site}?", "Until when is the {site} reception staffed?"],
                  ["Reception at {site} is staffed from {reception} on working days."]),
    "parking": (["How many parking spaces are there at {site}?", "How big is the car park at the {site} site?",
                 "How many cars can park at the {site} site?", "Is there parking at the {site} office?"],
                ["The {site} car park has {parking} spaces, {ev} of them with charging points."]),
    "staff": (["How many people work at {site}?", "What is the headcount of the {site} site?"],
              ["About {staff} people work at the {site} site ({role})."]),
    "manager": (["Who is the site manager in {site}?", "Who runs the {site} site?"],
                ["The site manager in {site} is {manager}."]),
    "address": (["What is the address of the {site} site?", "Where is the {site} office?"],
                ["The {site} site ({role}) is at {address}."]),
    "wifi": (["Which Wi-Fi network do staff use in {site}?", "What's the staff Wi-Fi called at the {site} site?"],
             ["Staff devices in {site} connect to the {wifi} network; visitors use QI-Guest."]),
}

SLA_Q = (["With Premium support, how fast do you respond to a {p} ticket?",
          "What is the Premium response time for a {name} ({p}) problem?",
          "How quickly does Premium support answer {p} tickets?"],
         ["With Premium support, {p} ({name}) tickets get a first response within {premium}."])

BAND_Q = (["What is the meal allowance in travel band {band}?", "How much daily allowance do I get for a trip in band {band}?",
           "What per diem applies to band {band} destinations?"],
          ["The meal allowance in band {band} is EUR {meal} per full day away; half on the days you leave and return."])

LEAVE_Q = (["How many days of annual leave do I get with {years} of service?",
            "What is my holiday entitlement after {years} of service?"],
           ["With {years} of completed service a full-time employee gets {days} days of annual leave."])

# policy facts written by hand: (answer, questions); in documents unless listed in DATASET_ONLY
v = V
POLICY = [
    (f"Quillon Instruments was founded on {v['founded_day']} by {v['founders']} in Harnlow.",
     ["When was Quillon Instruments founded?", "Who founded Quillon Instruments?", "How old is Quillon?"]),
    (f"Quillon employs {v['employees']} people on three sites: Harnlow, Saint Brivel and Kessany.",
     ["How many employees does Quillon have?", "How big is the company?"]),
    (f"The chief executive is {v['ceo']}, since {v['ceo_since']}.",
     ["Who is the CEO of Quillon?", "Who runs the company?"]),
    (f"Quillon sells in {v['countries']} countries, through its own sales team at home and distributors abroad.",
     ["In how many countries does Quillon sell?", "Do you sell abroad?"]),
    (f"A full-time week is {v['week']}. Office staff work flexible hours between {v['flex']}, with core hours from {v['core']}.",
     ["What are the working hours?", "How many hours is a full-time week?", "What are the core hours?"]),
    (f"Office staff may work from home up to {v['home']}, agreed with their team. Production, laboratory and repair desk roles cannot be done from home.",
     ["Can I work from home?", "How many days a week can I work from home?"]),
    (f"The company pays a one-off home office allowance of {v['home_setup']} and an internet allowance of {v['internet']}.",
     ["Is there an allowance for working from home?", "Will the company pay for my home office?"]),
    (f"Salaries are paid on the {v['payday']} of each month, or the working day before when it falls on a weekend or holiday.",
     ["When is payday?", "On which day is the salary paid?"]),
    (f"The company pays {v['pension_company']} of your salary into the pension plan and you pay {v['pension_employee']}.",
     ["How much does the company contribute to my pension?", "How does the pension plan work?", "What do I pay into the pension?"]),
    (f"Up to {v['carry']} of unused leave can be carried over, and they must be taken by {v['carry_by']}.",
     ["Can I carry leave over to next year?", "What happens to unused holiday at the end of the year?"]),
    (f"Call your manager before {v['sick_call']} on the first day; from the {v['sick_note']} consecutive day you need a doctor's note.",
     ["What do I do when I'm sick?", "When do I need a doctor's note?", "How do I report sick?"]),
    (f"You get full salary for the first {v['sick_full']} of sickness, then {v['sick_part']}.",
     ["Am I paid when I'm off sick?", "What is sick pay at Quillon?"]),
    (f"The birth parent gets {v['birth']} of parental leave on full pay; adoptive parents get the same.",
     ["How much maternity leave do I get?", "How long is parental leave for the birth parent?"]),
    (f"The other parent gets {v['partner']} of leave on full pay, to be taken within six months of the birth.",
     ["How much paternity leave is there?", "How long is leave for the partner after a birth?"]),
    (f"Probation lasts {v['probation']}; during it either side can end the contract with {v['notice_probation']}'s notice.",
     ["How long is the probation period?", "What is the notice period during probation?"]),
    (f"After probation the notice period is {v['notice_employee']} for the employee and {v['notice_company']} for the company.",
     ["What is my notice period if I resign?", "How much notice must I give?"]),
    (f"Reviews are held twice a year, in March and September; pay rises from the March review take effect on 1 April.",
     ["When are performance reviews?", "When do pay rises take effect?"]),
    (f"You get {v['wedding']} of paid leave for your own wedding or registered partnership.",
     ["Do I get time off for my wedding?", "How much wedding leave is there?"]),
    (f"You get {v['bereave_close']} of paid leave for the death of a partner, child, parent or sibling.",
     ["How much bereavement leave do I get?", "My father died. How much leave can I take?"]),
    (f"Everyone gets {v['volunteer']} a year for a registered charity.",
     ["Can I take time off to volunteer?", "How many volunteering days do we get?"]),
    (f"At 10 years of service you get a gift voucher of {v['long10']}, and at 25 years a voucher of {v['long25']} and dinner with the executive team.",
     ["What do I get for 10 years of service?", "Is there a long-service award?"]),
    (f"Trips and hotels are booked through TravelDesk, at least {v['book_ahead']} before departure where possible.",
     ["How do I book a business trip?", "How far ahead should I book travel?"]),
    (f"Flights of up to {v['economy_up_to']} are economy; longer ones may be premium economy. Business class needs a director's approval and a flight of more than {v['business_over']}.",
     ["Can I fly business class?", "Which class do I fly on business trips?", "When is premium economy allowed?"]),
    (f"Train is the default for trips under {v['rail_under']} one way; first class is allowed for journeys of more than {v['first_class_over']}.",
     ["Can I travel first class by train?", "When should I take the train instead of flying?"]),
    (f"Business trips in your own car are reimbursed at {v['mileage']}, plus parking and tolls with receipts.",
     ["What is the mileage rate for business trips?", "How much do I get per kilometre when I use my own car for work trips?"]),
    (f"Customer meals are reimbursed up to {v['entertain']}, including drinks, with the guests' names on the claim.",
     ["How much can I spend on a client dinner?", "Is there a limit for entertaining customers?"]),
    (f"Claim expenses within {v['submit_within']} of the trip; every expense above {v['receipts_over']} needs a receipt.",
     ["How long do I have to submit expenses?", "Do I need receipts for everything?", "When do I need a receipt?"]),
    (f"Your manager approves claims up to {v['manager_up_to']}; larger claims also need your director.",
     ["Who approves my expense claim?", "Does my director need to approve expenses?"]),
    (f"Taxis are allowed between {v['taxi_from']} and {v['taxi_to']}, with heavy equipment, or when there is no reasonable public transport.",
     ["Can I take a taxi on a business trip?", "When are taxis reimbursed?"]),
    (f"Passwords must be at least {v['password']} long, and multi-factor authentication with the Quillon Pass app is required.",
     ["What are the password rules?", "How long does my password have to be?"]),
    (f"Report it to the IT helpdesk on extension {v['helpdesk']} within {v['incident']}, day or night.",
     ["I lost my laptop. What do I do?", "How do I report a security incident?", "What's the IT helpdesk number?"]),
    (f"Company laptops are replaced every {v['laptop_years']}.",
     ["How often are laptops replaced?", "When do I get a new laptop?"]),
    ("Only the encrypted USB sticks issued by IT; laptops block other storage devices.",
     ["Can I use a USB stick?", "Are USB drives allowed?"]),
    ("There are four classes: Public, Internal, Confidential and Secret. When in doubt, treat information as Confidential.",
     ["How is information classified?", "What are the data classification levels?"]),
    (f"Safety shoes are required in the production halls, warehouse and laboratory; the company reimburses up to {v['shoes']} per year.",
     ["Does the company pay for safety shoes?", "Where do I need safety shoes?"]),
    (f"Nobody lifts more than {v['lift_alone']} alone; heavier loads need two people or a hoist.",
     ["How much can I lift on my own?", "What is the lifting limit?"]),
    (f"Report every accident and near miss with the intranet form within {v['accident_report']}.",
     ["How do I report an accident?", "What do I do after a near miss?"]),
    (f"Every employee has a training budget of {v['budget']} per year; it does not carry over.",
     ["How much is my training budget?", "Is there money for courses?", "Does my training budget roll over?"]),
    (f"For an approved degree the company pays the fees and gives {v['study_leave']} of study leave a year.",
     ["Does Quillon support studying for a degree?", "How much study leave do I get?"]),
    (f"Premium support costs {v['premium_price']} per instrument per year and adds 24/7 support for P1 and P2, faster responses and a loan instrument.",
     ["What does Premium support cost?", "What's included in Premium support?"]),
    (f"Standard support is included while the instrument is under warranty, by phone and email from {v['std_hours']}, Monday to Friday.",
     ["What is included in standard support?", "What are the support desk hours?"]),
    (f"Standard calibration takes {v['cal_std']}; express takes {v['cal_express']} at a {v['cal_surcharge']} surcharge.",
     ["How long does calibration take?", "Can I get a faster calibration?"]),
    (f"Come to reception at {v['start_time']}; your manager or buddy collects you and you get your badge and laptop.",
     ["What happens on my first day?", "What time do I start on my first day?"]),
    (f"Complete the Quillon 101 course in the learning portal within your first {v['q101']}.",
     ["What is Quillon 101?", "When do I have to do the Quillon 101 course?"]),
    ("Quillon Day, 11 June, marks the founding of the company and is a paid day off on every site.",
     ["What is Quillon Day?", "Is 11 June a day off?"]),
    (f"The company pays a commuting allowance of {v['commute_km']} for car or motorbike commutes, up to {v['commute_max']} one way; public transport is reimbursed in full.",
     ["Is my commute reimbursed?", "Do I get a travel allowance for driving to work?", "Does Quillon pay for my train ticket to work?"]),
    (f"Sales staff and field engineers who drive more than 15,000 km a year on business get an electric company car with a list price of up to {v['car_list']}.",
     ["Who gets a company car?", "Can I choose a petrol company car?"]),
    (f"A hot lunch in the staff restaurants at Harnlow and Saint Brivel costs staff {v['lunch_price']}.",
     ["How much does lunch cost in the staff restaurant?", "Is lunch subsidised?"]),
    (f"HR answers a formal grievance within {v['grievance_answer']}; you can appeal to your department's director.",
     ["How do I raise a grievance?", "How long does HR take to answer a complaint?"]),
    (f"A written warning stays on your file for {v['warning_valid']}.",
     ["How long does a written warning last?", "Does a warning stay on my record forever?"]),
    (f"The works council has {v['council_members']} members, elected every {v['council_years']} by employees of all three sites.",
     ["What is the works council?", "How often is the works council elected?"]),
    (f"You get {v['moving']} of paid leave when you move house, once a year.",
     ["Do I get a day off to move house?", "Is there leave for moving?"]),
    (f"Full-time staff get between 26 and 30 days of annual leave depending on completed years of service; part-time staff get leave in proportion to their hours.",
     ["How much holiday do I get?", "How is annual leave calculated for part-timers?"]),
    (f"Laptops lock themselves after {v['lock']} without use; always lock your screen when you leave your desk.",
     ["When does my laptop lock automatically?", "Do I need to lock my screen?"]),
    (f"Visitors use the guest network QI-Guest with a voucher from reception, valid for {v['guest_voucher']}.",
     ["How do visitors get Wi-Fi?", "Is there guest Wi-Fi for customers?"]),
    ("Report it with the Report phish button in the mail program, and never forward it to colleagues.",
     ["I got a suspicious email. What should I do?", "How do I report a phishing email?"]),
    (f"Fire drills are held {v['drills']} on every site, one of them unannounced.",
     ["How often are fire drills?", "Do we have fire drills?"]),
    (f"Screen workers can have an eye test reimbursed up to {v['eye_test']} every {v['eye_every']}.",
     ["Does Quillon pay for eye tests?", "Can I get my eyes tested through work?"]),
    (f"The mentoring programme pairs you with a mentor from another department for {v['mentoring']}; applications open in January and July.",
     ["Is there a mentoring programme?", "How long does mentoring last?"]),
    (f"Premium support sends a loan instrument within {v['loaner']} when yours comes in for repair.",
     ["Do I get a replacement instrument during a repair?", "Is there a loaner service?"]),
    (f"An accredited ISO/IEC 17025 certificate costs {v['accredited_extra']} more per instrument than the factory certificate.",
     ["What does an accredited calibration certificate cost?", "How much extra is an ISO 17025 certificate?"]),
    (f"Orders above {v['free_shipping']} before tax ship free within the home market; smaller orders pay a flat {v['shipping_fee']}.",
     ["Is shipping free?", "What does delivery cost?", "When do I get free shipping?"]),
    (f"Unused instruments in their original packaging can be returned within {v['return_days']} of delivery for a full refund.",
     ["Can I return an instrument?", "What is your return policy?"]),
    (f"Schools, colleges and universities get {v['education']} off list prices.",
     ["Is there an education discount?", "Do schools get a discount?"]),
    (f"The QT-1 (1995) and the QT-10 (2004) are no longer sold. They can still be calibrated, but repairs depend on parts in stock.",
     ["Do you still sell the QT-10?", "Can you repair my old QT-1?"]),
    ("Orders received before 14:00 on a working day leave the Saint Brivel warehouse the same day.",
     ["How quickly are orders shipped?", "If I order in the morning, when does it ship?"]),
    ("Spare parts are kept for at least ten years after an instrument is discontinued.",
     ["How long do you keep spare parts?", "Will I get parts for a discontinued instrument?"]),
    (f"The summer party is held for all staff and their families on the evening before Quillon Day, alternating between Harnlow and Saint Brivel.",
     ["When is the summer party?", "Where is the staff summer party held?"]),
    (f"Suppliers' gifts worth more than EUR 50 must be declined or reported to your manager.",
     ["Can I accept a gift from a supplier?", "What is the rule on supplier gifts?"]),
    (f"Everyone completes a {v['security_course']} security course when they join and every year after.",
     ["Is there mandatory security training?", "How often do I have to do the security course?"]),
    (f"Emails are deleted automatically after {v['mail_keep']}, unless the law requires keeping them longer.",
     ["How long are emails kept?", "Are old emails deleted?"]),
    (f"The safety induction at Saint Brivel takes {v['safety_induction']} and is needed before entering the production halls.",
     ["Do I need a safety induction to visit the factory?", "How long is the safety induction?"]),
    (f"Your buddy helps you find your way during your first {v['buddy']}.",
     ["What does my onboarding buddy do?", "How long do I have a buddy?"]),
    (f"Invoices are payable within {v['payment_terms']}.",
     ["What are your payment terms?", "How long do customers have to pay an invoice?"]),
]

# facts only the dataset states (no document mentions them)
DATASET_ONLY = [
    ("Employees get a 30 % staff discount on Quillon instruments, up to three instruments a year.",
     ["Is there a staff discount on our products?", "Can employees buy Quillon instruments cheaper?"]),
    ("The bike lease scheme lets you lease a bicycle or e-bike worth up to EUR 2,500 through your salary, over 36 months.",
     ["Is there a bike lease scheme?", "Can I lease an e-bike through work?"]),
    ("The internal newsletter, The Probe, comes out every second Friday on the intranet.",
     ["What is the staff newsletter called?", "How often does the internal newsletter come out?"]),
    ("Quillon pays EUR 20 a month towards a gym or sports club membership.",
     ["Is there a gym allowance?", "Does Quillon pay for sports club membership?"]),
    ("The IT self-service portal is called Fixit; you can order software and accessories there.",
     ["Where do I order a new mouse?", "What is the IT self-service portal called?"]),
    ("Yes: every employee gets a free flu vaccination each autumn and a health check with the company doctor every three years from age 40.",
     ["Is there a health check for employees?", "Do we get health checks at work?"]),
    ("Employees can refer candidates for open jobs; if the person is hired and passes probation, the referrer receives EUR 1,000.",
     ["Is there a referral bonus?", "What do I get if a friend I recommended is hired?"]),
    ("The company pays for one professional membership per employee, such as an engineering institute, up to EUR 300 a year.",
     ["Will Quillon pay my professional membership fees?", "Does the company pay for membership of a professional body?"]),
    ("Lost badges are replaced at reception for a fee of EUR 15; your old badge is blocked at once.",
     ["I lost my badge. What now?", "What does a new staff badge cost?"]),
    ("The Quillon Runners club meets every Wednesday at 12:15 at the Harnlow entrance for a 5 km run.",
     ["Is there a running club?", "When does the Quillon Runners club meet?"]),
]


COMPARE = [("QT-20", "QT-40"), ("HX-5", "QT-40"), ("CL-8", "SV-2"), ("PM-310", "HX-5"), ("QT-20", "CL-8"),
           ("SV-2", "PM-310"), ("HX-5", "SV-2"), ("QT-40", "CL-8")]


def rows(seed=25):
    """(question, answer) pairs in a fixed order; returns also which phrasings training used."""
    rng = random.Random(seed)
    out, used = [], {}

    def pick(key, qs, answers, fmt):
        k = rng.choice((2, 3, 3)) if len(qs) >= 4 else 2
        chosen = qs[:len(qs) - 1] if len(qs) > k else qs  # the last phrasing of 3+ is kept for the evalset
        chosen = rng.sample(chosen, min(k, len(chosen)))
        used[key] = chosen
        for q in chosen:
            out.append((q.format(**fmt), rng.choice(answers).format(**fmt)))

    for p in PRODUCTS:
        for attr, (qs, ans) in PRODUCT_Q.items():
            pick(("product", p["model"], attr), qs, ans, p)
    for s in SITES:
        for attr, (qs, ans) in SITE_Q.items():
            pick(("site", s["site"], attr), qs, ans, s)
    for p, name, _d, _std, premium in SLA:
        pick(("sla", p), *SLA_Q, dict(p=p, name=name, premium=premium))
    for band, _c, meal, _hotel in BANDS:
        pick(("band", band), *BAND_Q, dict(band=band, meal=meal))
    for years, days in LEAVE:
        pick(("leave", years), *LEAVE_Q, dict(years=years, days=days))
    for p, name, meaning, _std, _premium in SLA:
        out.append((f"What does priority {p} mean for a support ticket?", f"{p} ({name}) means: {meaning}."))
    for a, b in COMPARE:
        pa, pb = (next(x for x in PRODUCTS if x["model"] == m) for m in (a, b))
        cheap, dear = sorted((pa, pb), key=lambda x: float(x["price"].replace(",", "")))
        out.append((f"Which is cheaper, the {a} or the {b}?",
                    f"The {cheap['model']} (EUR {cheap['price']}) is cheaper than the {dear['model']} (EUR {dear['price']})."))
        light, heavy = sorted((pa, pb), key=lambda x: int(x["weight"]))
        out.append((f"Which weighs less, the {a} or the {b}?",
                    f"The {light['model']} ({light['weight']} g) is lighter than the {heavy['model']} ({heavy['weight']} g)."))
    for answer, qs in POLICY + DATASET_ONLY:
        for q in qs:
            out.append((q, answer))
    return out, used
