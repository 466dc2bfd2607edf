"""Document texts of the Quillon Instruments project, filled from quillon_facts.py / V."""

from quillon_facts import BANDS, LEAVE, PRODUCTS, SITES, SLA

# policy values: one place for each figure the documents and the rows state
V = dict(
    founded="1994", founded_day="11 June 1994", founders="Mara Quillon and Tobias Renk", first_product="QT-1",
    factory_opened="2003", kessany_opened="2011", employees="1,140", revenue="EUR 212 million",
    revenue_year="2025", countries="48", iso9001="1999", iso17025="2008", ceo="Ines Marlowe", ceo_since="2020",
    core="10:00 to 15:00", flex="07:00 to 19:00", week="38 hours", carry="5 days", carry_by="31 March",
    sick_call="09:30", sick_note="fourth", sick_full="13 weeks", sick_part="a further 13 weeks at 70 % of salary",
    birth="20 weeks", partner="6 weeks", probation="4 months", notice_probation="1 week",
    notice_employee="1 month", notice_company="2 months", notice_company_long="3 months",
    payday="25th", home="2 days a week", home_setup="EUR 420", internet="EUR 25 per month",
    pension_company="6 %", pension_employee="3 %", volunteer="2 paid volunteering days",
    long10="EUR 250", long25="EUR 500", bereave_close="5 days", bereave_other="1 day", moving="1 day",
    wedding="2 days", budget="EUR 1,600", study_leave="5 days", repay_months="24 months", repay_over="EUR 3,000",
    mentoring="12 months", book_ahead="14 days", economy_up_to="6 hours", business_over="10 hours",
    rail_under="600 km", first_class_over="3 hours", mileage="EUR 0.31 per km", receipts_over="EUR 25",
    submit_within="60 days", manager_up_to="EUR 2,000", entertain="EUR 75 per person", card_limit="EUR 7,500",
    taxi_from="22:00", taxi_to="06:00", lost_receipts="three times a year",
    password="14 characters", lock="5 minutes", laptop_years="4 years", helpdesk="4400", incident="1 hour",
    backup="01:00", mail_keep="5 years", security_course="30-minute", guest_voucher="24 hours",
    revenue_prev="EUR 196 million", op_profit="EUR 23.4 million", op_profit_prev="EUR 20.9 million",
    rnd="EUR 19.1 million", shipped="284,000", calibrations="61,500", cal_turnaround_avg="7.4 working days",
    export_share="57 %", hires="131", turnover="6.8 %", training_hours="31 hours", apprentices="22",
    warehouse="4,200 m²", solar="1.6 MW", own_solar_share="38 %", repaired="8,400", profit_share="EUR 1,350",
    co2_down="18 %", board="five",
    evening_allowance="15 %", night_allowance="30 %", weekend_allowance="50 %", sunday_allowance="100 %",
    overtime_weekday="125 %", overtime_saturday="150 %", overtime_sunday="200 %", standby="EUR 47 per day",
    free_shipping="EUR 250", shipping_fee="EUR 9.90", payment_terms="30 days net", return_days="14 days",
    quote_valid="60 days", education="15 %",
    shoes="EUR 120", first_aid_ratio="one first aider for every 50 people", drills="twice a year",
    eye_test="EUR 90", eye_every="2 years", accident_report="24 hours", lift_alone="25 kg", lift_young="15 kg",
    hearing="80 dB(A)", premium_price="EUR 390", loaner="2 business days", std_hours="08:30 to 17:30",
    cal_std="10 working days", cal_express="3 working days", cal_surcharge="50 %", accredited_extra="EUR 45",
    cal_reminder="21 days", onsite_from="10 instruments", start_time="09:00", buddy="8 weeks",
    q101="2 weeks", safety_induction="3 hours", closure_days="28, 29 and 30 December 2027",
    car_list="EUR 45,000", lunch_price="EUR 3.80", commute_km="EUR 0.19 per km", commute_max="30 km",
    grievance_answer="10 working days", warning_valid="12 months", council_members="11", council_years="4 years",
    immersion="10 times", food_core="75 °C", acclimatise="15 minutes", salt_check="75 % RH", filter_months="6 months",
    zero_seconds="60 seconds", breathing_height="1.5 m", inlet_hours="100 hours", sound_cal="94 dB",
    sound_dev="0.5 dB", mic_height="1.2 to 1.5 m", wall_distance="1 m", records_keep="7 years",
)


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def company_overview():
    v = V
    return f"""# About Quillon Instruments

Quillon Instruments designs, builds and calibrates handheld measuring instruments:
thermometers, hygrometers, particulate monitors, clamp meters and sound level meters. This page
is the short version of our story for new colleagues, visitors and the press.

## History

Quillon Instruments was founded on {v['founded_day']} by {v['founders']} in a rented workshop in
Harnlow. Mara Quillon had spent ten years repairing laboratory equipment; Tobias Renk wrote the
firmware. Their first product, the {v['first_product']}, was a single-channel thermocouple thermometer
sold mainly to bakeries and dairies. It sold well enough that the company moved into its own
building on Ferrant Quay within three years.

- **{v['founded']}**: the company is founded in Harnlow.
- **{v['iso9001']}**: the quality management system is certified to ISO 9001.
- **{v['factory_opened']}**: the factory in Saint Brivel opens; production moves out of Harnlow.
- **{v['iso17025']}**: the calibration laboratory in Saint Brivel is accredited to ISO/IEC 17025.
- **{v['kessany_opened']}**: the sales and support office in Kessany opens.
- **{v['ceo_since']}**: {v['ceo']} becomes chief executive; the founders move to the supervisory board.

## Quillon today

We employ {v['employees']} people on three sites and sell in {v['countries']} countries, through our own
sales team at home and through distributors abroad. Revenue in {v['revenue_year']} was {v['revenue']}.
The company is owned by the Quillon Renk Foundation, which the founders set up so that the
company could never be sold; the foundation's statutes require that profits are reinvested or
shared with employees.

| Site | Role | Staff |
|---|---|---|
""" + "\n".join(f"| {s['site']} | {s['role']} | {s['staff']} |" for s in SITES) + f"""

## What we believe

Measurements are only useful when people can trust them. Every instrument that leaves Saint
Brivel has been checked against references traceable to national standards, and every one can
be sent back to us for calibration for as long as we have spare parts for it. We design for
repair: batteries, probes, filters and cases can all be replaced.

## Products at a glance

Our range covers six instrument families. Details are in the product catalogue and in each
instrument's data sheet.
"""


def _catalogue_entry(p):
    apps = "\n".join(f"- {a[0].upper() + a[1:]}." for a in p["applications"])
    acc = _table(("Accessory", "List price"), [(a[0][0].upper() + a[0][1:], f"EUR {a[1]}") for a in p["accessories"]])
    return f"""### {p['model']} {p['type']}

The {p['model']} is {p['pitch']}. It has {p['display']} and {p['probe']}. It runs on
{p['battery']} for about {p['hours']} hours and weighs {p['weight']} g. List price: EUR {p['price']}.

Typical uses:

{apps}

Accessories for the {p['model']}:

{acc}

In the box: {p['box']}.

{_table(("Specification", p['model']), [
        ("Protection", p['ip']), ("Memory", p['memory']), ("Operating temperature", p['optemp']),
        ("Warranty", f"{p['warranty']} years"), ("Recommended calibration interval", f"{p['cal_months']} months")])}"""


def catalogue():
    rows = [(p["model"], p["type"], p["range"], p["acc"], f"{p['weight']} g", f"EUR {p['price']}") for p in PRODUCTS]
    fams = "\n\n".join(_catalogue_entry(p) for p in PRODUCTS)
    return f"""# Product catalogue {V['revenue_year'][:2]}27

This catalogue lists every instrument Quillon Instruments sells today, with list prices in
euros before tax. Prices for distributors, volume discounts and education prices are on the
separate price list that sales sends on request.

## The range

{_table(("Model", "Instrument", "Measuring range", "Accuracy", "Weight", "List price"), rows)}

Weights include the batteries. Accuracy is stated at 23 °C; each instrument's data sheet gives
its full specification.

## The instruments

{fams}

## Choosing the right instrument

Most customers know which quantity they need to measure; the harder question is which
instrument suits the job. A few rules of thumb from our application engineers:

- **Temperature of food, liquids and air ducts:** the QT-20 is enough. It is waterproof enough
  to be rinsed under the tap and simple enough for kitchen staff.
- **Two temperatures at once, or temperatures above 300 °C:** choose the QT-40 with suitable type
  K probes. Its memory holds far more readings, which matters for oven profiles.
- **Damp, mould and drying:** the HX-5 shows the dew point directly, so it tells you whether
  water will condense on a wall, not only how humid the air is.
- **Dust at work or outdoors:** the PM-310. It is the only instrument in the range that needs a
  daily zero check and a yearly calibration without exception.
- **Electrical loads:** the CL-8 measures current without breaking the circuit. It does not
  replace a multimeter for voltage and resistance work.
- **Noise:** the SV-2 is a class 2 meter, suitable for noise at work and for most neighbourhood
  complaints. Measurements for legal proceedings usually need a class 1 meter, which we do not
  make.

When in doubt, the sales team in Kessany will lend a demonstration instrument for a week.

## Ordering

Customers order through the web shop, by email to orders@quillon.example or through a
distributor. Orders received before 14:00 on a working day leave the Saint Brivel warehouse the
same day. Every instrument is delivered with a factory calibration certificate; an accredited
ISO/IEC 17025 certificate can be added when ordering (see the calibration service).

## Terms of sale

- **Payment:** invoices are payable within {V['payment_terms']}. New customers outside the
  home market pay in advance.
- **Shipping:** orders above {V['free_shipping']} before tax ship free within the home market;
  smaller orders pay a flat {V['shipping_fee']}. Shipping abroad is charged at cost.
- **Returns:** unused instruments in their original packaging can be returned within
  {V['return_days']} of delivery for a full refund. Instruments calibrated with an accredited
  certificate on the customer's request cannot be returned.
- **Quotes:** written quotes are valid for {V['quote_valid']}.
- **Education:** schools, colleges and universities receive {V['education']} off list prices.

## Accessories and spare parts

Probes, filters, cases, windscreens and rechargeable batteries are sold separately. Spare parts
are kept for at least ten years after an instrument is discontinued.

## Discontinued instruments

The QT-1 (1995) and the QT-10 (2004) are no longer sold. They can still be calibrated, but
repairs depend on the parts in stock.
"""


def datasheet(p):
    cal = f"{p['cal_months']} months"
    return f"""# {p['model']} {p['type']} — data sheet

The {p['model']} is {p['pitch']}. It was launched in {p['launch']} and is built and calibrated in our
factory in Saint Brivel.

## Specifications

{_table(("Property", "Value"), [
        ("Measuring range", p['range']),
        ("Accuracy (at 23 °C)", p['acc']),
        ("Display", p['display']),
        ("Sensor / inputs", p['probe']),
        ("Memory", p['memory']),
        ("Power", p['battery']),
        ("Battery life", f"about {p['hours']} hours of continuous use"),
        ("Protection", f"{p['ip']} (dust and water, IEC 60529)"),
        ("Operating temperature", p['optemp']),
        ("Weight", f"{p['weight']} g including batteries"),
    ])}

## Using the {p['model']}

Switch the instrument on with the power key; it runs a short self-test and shows the live reading
after about two seconds. The HOLD key freezes the reading, and a long press on HOLD stores it in
the memory with the date and time. Stored readings are transferred to a computer with the free
Quillon Link software over USB. The instrument switches itself off after 20 minutes without a key
press; this can be turned off in the settings menu for long measurements.

## Calibration

We recommend calibrating the {p['model']} every {cal}, or sooner when it is used for legal or
safety-relevant measurements. Calibration at our Saint Brivel laboratory costs EUR {p['cal_price']} with a
factory certificate. The instrument shows a small spanner symbol when the calibration date stored
in it has passed.

## Warranty

The {p['model']} carries a {p['warranty']}-year warranty from the date of delivery, covering defects in
materials and workmanship. Batteries, probes and filter caps are wear parts and are not covered.

## In the box

{p['box'][0].upper() + p['box'][1:]}.

## Ordering information

| Item | List price |
|---|---|
| {p['model']} {p['type']} | EUR {p['price']} |
| Calibration at Saint Brivel (factory certificate) | EUR {p['cal_price']} |
"""


def site_guide(s):
    food = (f"The staff restaurant on the ground floor serves hot lunches from {s['canteen']}, Monday to Friday. "
            "Coffee and tea are free in the kitchens on every floor."
            if s["canteen"] else
            "The office has no staff restaurant. Staff receive lunch vouchers worth EUR 9.50 per working day "
            "on site, accepted by most cafés around Tannery Lane. Coffee and tea are free in the kitchens on every floor.")
    extra = {
        "Harnlow": """The building has six floors. The ground floor holds reception, the restaurant and the
visitor meeting rooms; research and development is on floors 2 and 3; finance, HR and the
executive offices are on floor 5; floor 6 is a roof terrace with quiet rooms. The test
chambers of the research department are in the basement and may be entered only with a
research badge.""",
        "Saint Brivel": """The site has a two-storey office building and three production halls. Hall A holds
assembly, Hall B the environmental test chambers and the calibration laboratory, and Hall C the
warehouse and shipping. Safety shoes are required in all three halls; visitors receive
overshoes with a steel cap at reception. The site runs in two shifts, from 06:00 to 14:00 and
from 14:00 to 22:00; a small night team runs the test chambers.""",
        "Kessany": """The office takes up three floors of a former leather works. Sales is on the first floor,
customer support and the repair desk on the second floor, and the training centre, with
room for 24 participants, on the third floor. Customers who bring an instrument in person
are received at the repair desk between 09:00 and 16:00.""",
    }[s["site"]]
    return f"""# Site guide: {s['site']}

The {s['site']} site is Quillon Instruments' {s['role']}: {s['what']}. About {s['staff']}
people work here. This guide tells new colleagues and visitors how to get here, get in and find
their way around.

## Address and getting here

**{s['address']}**

The nearest public transport is {s['station']}, a {s['walk']}-minute walk from the entrance. The
car park has {s['parking']} spaces, of which {s['ev']} have charging points for electric cars;
charging is free for staff. There are {s['bikes']} covered bicycle spaces next to the entrance.

## Reception and access

Reception is staffed from {s['reception']} on working days. Visitors sign in at reception,
receive a visitor badge and are collected by their host; they must be accompanied at all times.
Staff badges open the building from {s['access']}; outside those hours the alarm is set and
entry needs the security service's permission.

## The building

{extra}

## Food and drink

{food}

## Safety

In an emergency call the internal number 112 or the public emergency number. When the fire
alarm sounds, leave by the nearest exit without using the lifts and go to the assembly point:
**{s['assembly']}**. Fire wardens wear orange vests and check each floor. First aid kits and
defibrillators are at reception and next to every staircase.

## Who to ask

The site manager is **{s['manager']}**. Facility requests (broken lights, heating, keys) go to
the facility desk through the intranet; urgent problems to reception.
"""


def employee_handbook():
    v = V
    leave = _table(("Completed years of service", "Days of annual leave"), [(a, f"{b} days") for a, b in LEAVE])
    return f"""# Employee handbook

This handbook explains the terms that apply to everyone employed by Quillon Instruments on all
three sites. Where your employment contract says something different, your contract applies. The
handbook is reviewed every year by HR together with the works council; the current version is
always the one on the intranet.

## 1. Working hours

A full-time working week is {v['week']}. Office staff work flexible hours: you may start and
finish when you like between {v['flex']}, as long as you are available during the core hours
from {v['core']}, Monday to Friday, and work your contracted hours over the month. Production
staff at Saint Brivel work in shifts and follow the shift plan instead; their shift times are in
the Saint Brivel site guide.

Hours worked beyond your contract are recorded in the time system. Up to 20 extra hours can
be carried into the next month; beyond that, extra hours must be agreed with your manager in
advance and are either paid or taken as time off, whichever you choose.

### Working from home

Staff in office roles may work from home up to {v['home']}, agreed with their team. Roles that
need the production halls, the laboratory or the repair desk cannot be done from home. To set
up a workplace at home, the company pays a one-off allowance of {v['home_setup']} and a monthly
internet allowance of {v['internet']}, both with your salary. The rules on information security
(see the IT and security policy) apply at home as in the office.

### Shift work

At Saint Brivel production runs in an early shift (06:00 to 14:00) and a late shift (14:00 to
22:00), with a small night team for the test chambers. Shift workers receive an allowance on top
of their hourly pay for the hours worked in each period:

| Hours worked | Shift allowance |
|---|---|
| Between 18:00 and 22:00 on weekdays | {v['evening_allowance']} |
| Between 22:00 and 06:00 | {v['night_allowance']} |
| On Saturdays | {v['weekend_allowance']} |
| On Sundays and public holidays | {v['sunday_allowance']} |

Shift plans are published four weeks ahead. Swapping a shift with a colleague is allowed when
the shift leader agrees; the swap must not give anyone more than six shifts in a row.

### Overtime

Overtime is work that your manager asks for beyond your contracted hours. It is paid at
{v['overtime_weekday']} of your hourly pay on weekdays, {v['overtime_saturday']} on Saturdays and
{v['overtime_sunday']} on Sundays and public holidays, or taken as time off at the same rates. Extra
hours you choose to work under flexible hours are not overtime: they are balanced in your time
account as described above.

### Standby duty

Engineers on the standby rota for Premium support and for the test chambers receive a standby
allowance of {v['standby']} on which they are on standby, whether or not they are called. Time
spent working after a call is paid as overtime. Nobody is on standby for more than one week in
four.

## 2. Pay and pension

Salaries are paid on the {v['payday']} of each month; when the {v['payday']} falls on a weekend or a
public holiday, on the working day before. A holiday allowance of 8 % of the annual salary is
paid with the May salary, and a thirteenth month with the December salary.

Salaries follow the Quillon pay scales, which are negotiated with the works council every two
years. Performance and development reviews are held twice a year, in March and September; pay
rises agreed in the March review take effect on 1 April.

Everyone joins the company pension plan from their first day. The company pays
{v['pension_company']} of your salary into the plan and you pay {v['pension_employee']}, deducted from
your salary before tax. You may choose to pay in more, up to 10 %.

## 3. Annual leave

Full-time staff receive annual leave according to their completed years of service on 1
January of the year:

{leave}

Part-time staff receive leave in proportion to their hours. Leave is requested in the time
system at least two weeks ahead for periods longer than three days. Up to {v['carry']} of
unused leave can be carried over into the next year and must be taken by {v['carry_by']}; leave
that is carried over and not taken by then is lost, unless illness prevented you from taking it.

The company closes between Christmas and New Year; the closure days are taken from annual
leave and are announced in the holiday calendar each year.

## 4. Other leave

| Occasion | Paid leave |
|---|---|
| Your own wedding or registered partnership | {v['wedding']} |
| Death of a partner, child, parent or sibling | {v['bereave_close']} |
| Death of another relative | {v['bereave_other']} |
| Moving house (once a year) | {v['moving']} |
| Jury service or a court summons as a witness | as long as needed |
| Volunteering for a registered charity | {v['volunteer']} a year |

Volunteering days are booked like annual leave; a short note from the charity is enough.

## 5. Sickness

If you are ill and cannot work, call your manager before {v['sick_call']} on the first day; a
message or email is not enough, because your manager needs to plan your work. From the
{v['sick_note']} consecutive day of sickness you need a doctor's note. During sickness you receive
your full salary for the first {v['sick_full']}, and {v['sick_part']}. The company doctor may
invite you for a consultation after two weeks of sickness.

## 6. Parents

The birth parent receives {v['birth']} of parental leave on full pay. The other parent receives
{v['partner']} on full pay, to be taken within the first six months after the birth. Adoptive
parents receive the same leave as birth parents, starting on the day the child joins the
family. Unpaid parental leave on top of this can be taken until the child is eight, in agreement
with your manager. Parents of children under twelve may also ask to work part time for a
period; the company agrees unless the business cannot allow it.

## 7. Starting and leaving

New employees start with a probation period of {v['probation']}. During probation either side
can end the contract with {v['notice_probation']}'s notice. After probation the notice period is
{v['notice_employee']} for the employee and {v['notice_company']} for the company; after five
years of service the company's notice period becomes {v['notice_company_long']}. Notice always
ends on the last day of a month.

Everyone who leaves is invited to an exit interview with HR. Company equipment, badges and
keys are returned on the last working day.

### References, pension and holiday when you leave

On request, HR writes a reference that states your role, your period of employment and, if you
wish, an assessment of your work agreed with your manager. Untaken leave is paid out with the
last salary; leave taken beyond your entitlement for the part of the year you worked is deducted.
Your pension stays yours: the contributions paid so far remain invested in the plan, and you can
transfer them to a new employer's plan or leave them until retirement. The profit share for the
year in which you leave is paid only if you worked the whole year.

### Returning colleagues

Colleagues who return within three years of leaving keep their years of service for annual
leave and notice periods, and do not serve a new probation period in the same kind of role.

### Retirement

Colleagues who are approaching retirement may reduce their working hours by up to 20 % in their
last two years of work while the company continues to pay pension contributions on their full
salary. Ask HR for a conversation at least a year before you want to start.

## 8. Recognition

Long service is celebrated: at 10 years of service you receive a gift voucher of
{v['long10']}, and at 25 years a voucher of {v['long25']} and a dinner with the executive team.
Teams can nominate colleagues for the yearly Quillon Award, presented at the summer party.

## 9. Conduct

We expect colleagues to treat each other, customers and suppliers with respect. Gifts from
suppliers above a value of EUR 50 must be declined or reported to your manager. Conflicts of
interest, such as a relative working for a supplier, must be reported to HR.

If you see something at work that is illegal, unsafe or dishonest, you can report it to your
manager, to HR or, anonymously, to the confidential line run by an external firm. Nobody who
reports a concern in good faith will be disadvantaged because of it.

## 10. Personal data and monitoring

HR keeps your personal data only as long as needed for your employment and the law. You may see
the data the company holds about you at any time by asking HR.

The company does not read employees' email or chat messages as a matter of routine. IT systems
record technical logs to keep them secure, and these logs may be examined only when there is a
concrete suspicion of a security incident or a serious breach of the rules, with the approval of
the head of HR and in the presence of a works council member. Cameras are used only at the
entrances, in the warehouse and in the calibration laboratory, and their recordings are deleted
after 72 hours unless an incident is being investigated.

### Equal treatment

Quillon Instruments does not accept discrimination, harassment or bullying on any ground. Every
employee who experiences or witnesses it can turn to their manager, to HR or to one of the
confidential advisers, whose names are on the intranet. Confidential advisers listen, explain the
options and never act without the employee's consent.

### Confidentiality and inventions

Everything you learn at work about our designs, customers, prices and colleagues stays
confidential, during your employment and after it. Inventions, designs, software and other
work you create as part of your job belong to the company. If you make an invention that is
patented, you receive an inventor's bonus, paid in two parts: when the patent is filed and when
it is granted.

### Alcohol, drugs and smoking

Working under the influence of alcohol or drugs is not allowed. Anyone who seems unfit to work
safely is sent home, and their manager talks with them the next working day. Alcohol is served at
company celebrations only after working hours and never in the production halls. Smoking,
including electronic cigarettes, is allowed only in the marked shelters outside the buildings.

### Company property

Company tools, instruments and vehicles are for work. Borrowing a demonstration instrument for
private use needs your manager's approval and a loan form from the warehouse. Personal parcels
may not be delivered to the sites.

## 11. Getting to work

Commuting by public transport is reimbursed in full: hand in your season ticket or your
monthly travel statement with your expenses. Colleagues who commute by car or motorbike
receive a commuting allowance of {v['commute_km']} for the distance between home and work, up
to {v['commute_max']} one way; the allowance is paid for the days you actually travel to the
site. This commuting allowance is not the same as the mileage paid for business trips, which
is set in the travel and expenses policy.

Sales staff and field service engineers who drive more than 15,000 km a year on business
receive a company car. Company cars are electric and may have a list price of up to
{v['car_list']}; private use is allowed and taxed as the law requires. Charging at home is
reimbursed at cost with a metered home charger installed by the company.

## 12. Meals and the summer party

In the staff restaurants at Harnlow and Saint Brivel a hot lunch costs staff {v['lunch_price']};
the company pays the rest. Salads, soup and sandwiches are charged at cost. Colleagues in
Kessany, where there is no restaurant, receive lunch vouchers instead (see the Kessany site
guide).

Every year the company holds a summer party for all staff and their families on the evening
before Quillon Day, alternating between Harnlow and Saint Brivel. Buses run from the other
sites.

## 13. Reviews and development

Twice a year, in March and September, every employee has a review with their manager. The
March review looks back on the past year, agrees goals for the coming year and decides on pay
rises; the September review is about development and training and does not affect pay.

Performance is rated on five levels, from "not yet meeting expectations" to "exceptional".
Ratings are compared in a calibration meeting of the managers of each department before they
are shared, so that the same work receives the same rating in every team. Managers also ask
two or three colleagues for feedback before the March review; you may suggest whom to ask.

If you do not agree with your rating, you can add your own comments to the review form and
ask for a meeting with your manager's manager.

## 14. Concerns and grievances

If something at work troubles you, first talk to your manager; most problems are solved that
way. If that does not work, or if the problem is with your manager, you can raise a formal
grievance in writing with HR. HR answers a formal grievance within {v['grievance_answer']},
after speaking with everyone involved. If you are not satisfied with the answer, you may appeal
to the director of your department, whose decision is final within the company.

You may bring a colleague or a works council member to any meeting about your grievance.

## 15. Disciplinary procedure

Misconduct is handled fairly and in steps. Minor misconduct leads to an informal conversation
with your manager. If it continues, HR issues a written warning, which stays on your file for
{v['warning_valid']}. A final written warning follows if the misconduct continues while a written
warning is valid. Serious misconduct, such as theft, violence or falsifying calibration
records, can lead to dismissal without prior warnings.

Before any warning is given you are heard, and you may bring a colleague or a works council
member.

## 16. The works council

The works council represents all employees. It has {v['council_members']} members, elected every
{v['council_years']} by and from the employees of all three sites, and meets with the executive
team every month. The council must agree to changes to working hours, the pay scales, this
handbook and the systems that record working time. Council members have 12 hours a month
for council work.

## 17. Other work and social media

You may have a second job or your own business as long as it does not compete with Quillon
Instruments, does not harm your work here and is reported to HR beforehand.

On social media, you may say where you work and share the company's public news. Do not share
internal information, and make clear that your opinions are your own. Only the communications
team speaks for the company.

## 18. Insurance

All employees are covered by the company's group accident insurance, at work and on the way to
and from work, at no cost to them. The company also pays for a disability insurance that tops up
the state benefit to 70 % of the last salary if an employee can no longer work because of
illness. Employees may join the company's collective health insurance at a discount; the
premium itself is paid by the employee.

## 19. Examples

**Leave for part-time staff.** A colleague with six completed years of service who works 30.4
hours a week (80 % of a full-time week) receives 80 % of 27 days, that is 21.6 days, which the
time system shows as 172.8 hours.

**Carrying leave over.** A colleague who has 7 days of leave left at the end of the year can
carry 5 of them over. Those 5 days must be taken by 31 March; the other 2 days are lost unless
illness prevented them from being taken.

**Notice.** A colleague with three years of service who resigns on 10 June gives one month's
notice, which ends on the last day of a month: the last working day is 31 July.

## 20. Frequently asked questions

**Can I take annual leave during my probation period?** Yes. Leave builds up from your first
day and can be taken in agreement with your manager.

**I was ill during my holiday. Do I lose those days?** No. Report the illness to your manager on
the first day, as you would at work, and send a doctor's note; the days of illness are not
counted as leave.

**Can I work from abroad?** Working from another country needs HR's approval in advance,
because of tax and insurance rules, and is limited to a few weeks a year.

**Who decides when I can take leave?** Your manager, who looks at the team's planning. Requests
made in good time are normally approved; in production, the summer holiday is planned in a
rota agreed in January.

**Does overtime count towards my pension?** Pension contributions are calculated on the base
salary, without overtime and allowances.

**Where do I find my payslip?** In the HR portal, on the day before payday.

## 21. Changes to this handbook

Changes are agreed with the works council and announced on the intranet at least one month
before they take effect.
"""


def travel_policy():
    v = V
    bands = _table(("Band", "Typical places", "Meal allowance per day", "Hotel limit per night"),
                   [(b, c, f"EUR {m}", f"EUR {h}") for b, c, m, h in BANDS])
    return f"""# Travel and expenses policy

This policy applies to every business trip and every expense claimed by Quillon Instruments
staff. Its aim is simple: travel safely, travel sensibly, and claim what the trip really cost.
Finance checks claims against this policy; anything outside it needs your director's written
approval before the trip.

## 1. Before you travel

Every trip is approved by your manager in the travel tool before it is booked. Travel and
hotels are booked through the company travel desk, TravelDesk, at least {v['book_ahead']} before
departure wherever possible; last-minute bookings cost the company on average a third more.
TravelDesk knows our negotiated hotel rates and checks the security advice for each destination.

For destinations with a high security risk, the trip also needs the approval of the head of HR.

## 2. How to travel

### Rail and road

For trips shorter than {v['rail_under']} one way, travel by train is the default. Second class is
the standard; first class may be booked for train journeys of more than {v['first_class_over']}
one way, so that you can work on board.

Using your own car for business trips is allowed when public transport is not practical; the
company reimburses {v['mileage']}, which covers fuel, wear and insurance. Parking and tolls are
reimbursed on top with receipts. Company pool cars can be booked at Harnlow and Saint Brivel.

### Flights

Flights are booked in economy class for flights of up to {v['economy_up_to']}. For longer flights
premium economy may be booked. Business class is allowed only for flights of more than
{v['business_over']}, and only with the written approval of your director. Frequent-flyer points
may be kept, but they must never influence the choice of airline or fare.

### Taxis

Taxis may be used between {v['taxi_from']} and {v['taxi_to']}, when carrying heavy equipment, or
when there is no reasonable public transport. Ride-hailing apps count as taxis.

## 3. Hotels and meals

Allowances depend on where you stay. Destinations are grouped in four bands:

{bands}

The hotel limit is per night, for a standard single room, breakfast included. The meal
allowance is paid per full day away and covers lunch, dinner, drinks and tips; you do not need
receipts for meals covered by the allowance. On the day you leave and the day you return you
receive half the allowance. When a customer or a conference provides a meal, the allowance is
reduced by a third for each meal provided.

## 4. Entertaining customers

Meals with customers are reimbursed up to {v['entertain']}, including drinks, with the names of
the guests on the claim. Entertaining government officials is not allowed without the approval
of the compliance officer, whatever the amount.

## 5. Paying and claiming

Staff who travel more than four times a year receive a corporate card with a limit of
{v['card_limit']} per month. The card may be used only for business expenses; private use, even if
repaid, is a breach of this policy.

Expenses are claimed in the expense tool within {v['submit_within']} of the end of the trip. Every
expense above {v['receipts_over']} needs a receipt. If a receipt is lost, a signed declaration may
replace it, at most {v['lost_receipts']}. Your manager approves claims of up to
{v['manager_up_to']}; larger claims also need your director's approval. Approved claims are paid
with the next salary.

## 6. Not reimbursed

- Fines for traffic or parking offences.
- Minibar, films and other personal hotel extras.
- Upgrades of flights, trains or rooms paid without approval.
- Alcohol, except with a customer meal.
- Lost or stolen personal belongings (your own insurance applies).

## 7. Insurance and emergencies

Every employee on a business trip is insured for medical costs, repatriation and lost luggage.
The 24-hour assistance number is on the insurance card in the travel tool. In an emergency,
call the assistance line first, then your manager.

## 8. Sustainability

Where a meeting can be held by video, hold it by video. Travel by train rather than by plane
whenever the journey takes less than six hours door to door. Each department sees its travel
emissions in the quarterly report.
"""


def it_policy():
    v = V
    return f"""# IT and information security policy

Quillon Instruments' designs, firmware, customer data and calibration records are what the
company lives on. This policy says how we protect them. It applies to every employee,
contractor and intern, on every device used for work.

## 1. Accounts and passwords

Every person has one personal account; accounts are never shared. Passwords must be at least
{v['password']} long. We do not force regular password changes; change your password at once if
you think someone else may know it. Multi-factor authentication with the Quillon Pass app is
required for email, the VPN and every cloud service.

Leave your screen locked whenever you leave your desk. Company laptops lock themselves after
{v['lock']} without use.

## 2. Devices

Every employee who needs one receives a standard company laptop, replaced every
{v['laptop_years']}. Engineers may request a workstation instead. Only IT installs software
that is not in the self-service catalogue. Laptops are encrypted and back up the documents
folder to the company cloud every night at {v['backup']}, when they are connected.

Private devices may be used for email and chat through the company apps only, never for
design files or customer data. USB sticks are allowed only if they are the encrypted sticks
issued by IT; the laptops block other storage devices.

## 3. Classifying information

| Class | Examples | Rules |
|---|---|---|
| Public | catalogue, data sheets, press releases | may be shared freely |
| Internal | this policy, the intranet, org charts | staff only |
| Confidential | customer data, prices for distributors, HR files | need to know; encrypted when emailed outside the company |
| Secret | firmware source, unreleased designs, calibration procedures | named people only; never leaves company systems |

When in doubt, treat information as Confidential.

## 4. Email, chat and the internet

Reasonable private use of email and the internet is allowed, as long as it does not disturb
your work. Emails are kept for {v['mail_keep']} and then deleted automatically, except where the
law requires longer. Suspicious emails are reported with the Report phish button in the mail
program; never forward them to colleagues.

## 5. Networks

Staff devices connect to the staff wireless network at each site. Visitors use the guest
network, QI-Guest, with a voucher from reception that is valid for {v['guest_voucher']}. On public
or hotel Wi-Fi, always connect the VPN before opening company systems.

## 6. Security incidents

A security incident is anything that may have put company information at risk: a lost
laptop or phone, a password typed into a fake site, a strange message from a supplier asking to
change bank details. Report every incident within {v['incident']} to the IT helpdesk on extension
{v['helpdesk']}, day or night. You will never be blamed for reporting a mistake; you may be for
hiding one.

## 7. Training

Everyone completes a {v['security_course']} security course when they join and again every year.
Managers see who in their team has not completed it.

## 8. Leaving the company

On your last day you return all devices and badges. Your accounts are closed at the end of
that day; your manager decides what happens to your files.
"""


def health_safety():
    v = V
    return f"""# Health and safety at work

Health and safety is part of every job at Quillon Instruments, on the production floor and at
a desk. This page summarises the rules; the safety instructions at each workplace go further.

## Responsibilities

Managers make sure the work in their team is safe and that everyone has the training and
equipment they need. Every employee follows the safety rules, uses the protective equipment
provided and reports hazards. The health and safety officer at Saint Brivel advises all three
sites.

## First aid and emergencies

Each site has trained first aiders: at least {v['first_aid_ratio']} on site. Their names and
phone numbers are on the notice boards. Fire drills are held {v['drills']} on every site, one of
them unannounced.

## Accidents and near misses

Every accident, even without injury, and every near miss is reported with the incident form on
the intranet within {v['accident_report']}. The safety officer investigates each report and
publishes what was learnt; nobody is blamed for reporting.

## Protective equipment

Safety shoes are required in the production halls, the warehouse and the laboratory. The
company reimburses safety shoes up to {v['shoes']} per year. Hearing protection is required in
areas where the noise level exceeds {v['hearing']}; these areas are marked with blue signs. Safety
glasses are worn at every workbench with soldering or cutting.

## Lifting

Nobody lifts more than {v['lift_alone']} alone; heavier loads are lifted by two people or with a
hoist. Employees under 18 lift at most {v['lift_young']}. Boxes in the warehouse show their weight.

## Working at a screen

Desks and chairs are adjustable and a second screen is provided on request. Employees who work
at a screen for more than two hours a day can have their eyes tested; the company reimburses
eye tests up to {v['eye_test']} every {v['eye_every']}, and glasses needed for screen work.

## Health

The company doctor holds consultation hours at each site every month. A flu vaccination is
offered every autumn, free of charge.
"""


def training_development():
    v = V
    return f"""# Training and development

We want every colleague to keep learning. This page explains what the company pays for and how
to ask for it.

## Your budget

Every employee has a personal training budget of {v['budget']} per year, to spend on courses,
conferences, books and certificates related to their work or their next role. The budget does
not carry over into the next year. Requests are made in the learning portal and approved by
your manager.

## Longer studies

For a degree or professional qualification approved by your director, the company pays the
tuition fees and gives {v['study_leave']} of study leave per year for exams and preparation. If
you leave the company within {v['repay_months']} of finishing a course that cost more than
{v['repay_over']}, you repay part of the cost, less one twenty-fourth for each month you stayed.

## Languages

Language courses for customer-facing roles are paid in full and count against the training
budget only for the part above EUR 800.

## Mentoring

The mentoring programme pairs colleagues with an experienced mentor from another department for
{v['mentoring']}. Applications open every January and July.

## Quillon Campus

Quillon Campus is our internal training programme: courses on our instruments, measurement
uncertainty, safety and software, taught by colleagues. Campus courses are free and do not count
against the training budget.
"""


def support_sla():
    v = V
    rows = [(p, f"{n} — {d}", s, pr) for p, n, d, s, pr in SLA]
    return f"""# Customer support: service levels

This document describes the support Quillon Instruments gives customers, and the response times
we commit to. Support staff in Kessany handle all tickets; the repair workshop and the
calibration laboratory in Saint Brivel handle instruments sent in.

## Support plans

**Standard support** is included with every instrument for as long as it is under warranty. It
covers the support desk by phone and email from {v['std_hours']}, Monday to Friday, and repairs
under warranty.

**Premium support** costs {v['premium_price']} per instrument per year. It adds round-the-clock
support for P1 and P2 tickets, faster response times, a loan instrument sent within
{v['loaner']} when an instrument comes in for repair, and a free yearly calibration.

## Priorities and response times

The response time is the time from when a ticket is logged until a support engineer contacts
the customer with a first diagnosis. It is not the time to a fix.

{_table(("Priority", "Meaning", "Standard support", "Premium support"), rows)}

Business hours and business days follow the Kessany office calendar. The support desk sets the
priority when the ticket is logged; the customer may ask for a higher priority with a reason.

## Repairs

Instruments are sent to the Saint Brivel repair workshop with the return form from the web
shop. Repairs under warranty are free, including shipping both ways. Outside the warranty we send
a quote before repairing; the diagnosis is free if the customer accepts the quote.

## Escalation

If a ticket does not progress, the customer may ask for the support manager in Kessany. P1
tickets that are not solved within two business days are reported to the head of operations.
"""


def calibration():
    v = V
    rows = [(p["model"], p["type"], f"{p['cal_months']} months", f"EUR {p['cal_price']}") for p in PRODUCTS]
    return f"""# Calibration service

The calibration laboratory in Saint Brivel calibrates Quillon instruments, and many instruments
of other makes, against references traceable to national standards. The laboratory has been
accredited to ISO/IEC 17025 since {V['iso17025']}.

## Recommended intervals and prices

{_table(("Model", "Instrument", "Recommended interval", "Price with factory certificate"), rows)}

An accredited ISO/IEC 17025 certificate costs {v['accredited_extra']} more per instrument than the
factory certificate. Prices include return shipping; the customer pays shipping to us.

## Turnaround

Standard calibration takes {v['cal_std']} from the day the instrument arrives. Express
calibration takes {v['cal_express']} and costs {v['cal_surcharge']} more. If an instrument needs
a repair before it can be calibrated, we ask the customer first.

## Reminders

Customers who register their instruments receive a reminder email {v['cal_reminder']} before a
calibration is due.

## On-site calibration

For customers with {v['onsite_from']} or more of the same family, our technicians can calibrate on
the customer's site with a mobile reference kit. On-site calibration is quoted per visit.
"""


def onboarding():
    v = V
    return f"""# Onboarding guide for new colleagues

Welcome to Quillon Instruments. This guide tells you what happens in your first weeks.

## Before your first day

HR sends you your contract, a link to the pension plan and a short form for your bank details.
IT prepares your laptop and accounts; your manager chooses a buddy for you.

## Your first day

Come to reception at {v['start_time']}. Your manager or your buddy collects you, and you receive
your badge (we take the photo at reception), your laptop and your Quillon Pass app set-up. The
morning is for getting to know your team; in the afternoon HR explains the handbook.

## Your buddy

Your buddy is a colleague from a neighbouring team who helps you find your way during your first
{v['buddy']}: where things are, who to ask, how things are done here.

## Your first weeks

- Complete the Quillon 101 course in the learning portal within your first {v['q101']}: the
  history of the company, our instruments and how a measurement becomes trustworthy.
- Complete the security course (see the IT and security policy).
- Everyone who will work in or visit the production halls takes the safety induction at Saint
  Brivel, which takes {v['safety_induction']}, before entering the halls.
- Agree your goals for the probation period with your manager.

## Probation

Your probation period lasts {v['probation']}. Your manager meets you halfway through and near the
end to talk about how it is going; the second meeting decides whether your employment
continues.
"""


def holiday_calendar():
    v = V
    hol = [("New Year's Day", "Friday 1 January 2027"), ("Good Friday", "Friday 26 March 2027"),
           ("Easter Monday", "Monday 29 March 2027"), ("Labour Day", "Saturday 1 May 2027 (no day off)"),
           ("Ascension Day", "Thursday 6 May 2027"), ("Whit Monday", "Monday 17 May 2027"),
           ("Quillon Day (company founding day)", "Friday 11 June 2027"),
           ("Christmas Day", "Saturday 25 December 2027 (no day off)"),
           ("Boxing Day", "Sunday 26 December 2027 (no day off)")]
    return f"""# Holiday calendar 2027

These are the days in 2027 on which all Quillon Instruments sites are closed. Production
shifts at Saint Brivel follow the same calendar unless the shift plan says otherwise.

## Public holidays

{_table(("Holiday", "Date"), hol)}

Quillon Day marks the founding of the company on {v['founded_day']}. It is a paid day off on
every site; the summer party takes place the evening before.

## Year-end closure

All sites close between Christmas and New Year. In 2027 the closure days are
{v['closure_days']}; they are taken from annual leave, so keep three days of leave for them.
The support desk runs an emergency service for Premium support customers during the closure.
"""


def field_guide():
    v = V
    return f"""# Field measurement guide

Good instruments give bad results when they are used badly. This guide collects the advice our
application engineers give customers most often, instrument family by instrument family. It is
written for customers and for our own support and sales staff, and it is the reference the
support desk uses when a customer asks why two readings do not agree.

## 1. General rules

Before every measurement session, check that the instrument is within its calibration date (a
spanner symbol on the display means it is overdue), that the batteries are charged, and that
probes, filters and windscreens are clean and undamaged. Let the instrument reach the
temperature of the place where you measure; a meter taken from a cold van into a warm room
reads wrongly until it has adjusted.

Write down what you measured, where, when and with which instrument (the serial number is on
the back label). Measurement records that may be needed for legal or safety purposes should be
kept for {v['records_keep']}. The Quillon Link software adds the instrument's serial number and
calibration date to every export.

## 2. Temperature (QT-20, QT-40)

A probe thermometer measures the temperature at its tip, and it can only do so when the tip has
taken on the temperature of what it measures. For liquids and soft materials, push the probe in
to a depth of at least {v['immersion']} the probe's diameter, so that heat flowing along the
steel does not falsify the reading. Wait until the reading has been stable for a few seconds
before you note it.

For food safety checks, measure at the thickest part of the product. Cooked food should reach a
core temperature of at least {v['food_core']}. Clean and disinfect the probe between products.

With the QT-40, use only type K thermocouples with the green miniature plug. Do not bend
thermocouple wires sharply or repeatedly at the same point: a kinked wire can add an error of
several degrees without breaking. The difference reading (T1 − T2) is useful for checking heat
exchangers and the supply and return of heating systems.

Surface temperatures need a surface probe; a standard immersion probe pressed against a pipe
reads several degrees low.

## 3. Humidity (HX-5)

Relative humidity depends strongly on temperature, so the HX-5 must have the same temperature
as the air it measures. After moving the meter between places that differ by more than 10 °C,
let it acclimatise for {v['acclimatise']} before reading. Hold it at arm's length: your breath and
body warmth change the reading.

The sensor sits behind a PTFE filter cap that keeps dust and droplets out. In dusty places,
such as building sites, replace the filter cap every {v['filter_months']}. Never clean the sensor
with solvents.

Users can check the HX-5 between calibrations with a saturated salt solution: sodium chloride
in a closed container produces {v['salt_check']} at room temperature. If the meter differs by more
than its accuracy plus 1 % RH, send it in for calibration.

Dew point readings help to judge the risk of condensation: if a surface is colder than the dew
point of the air around it, water will condense on it.

## 4. Particulates (PM-310)

Start every measurement day with a zero check: fit the zero filter to the inlet, press ZERO and
wait {v['zero_seconds']}. The monitor stores the result; a zero that drifts from day to day points
to a dirty optical chamber.

For exposure measurements at work, mount the monitor on a tripod at breathing height, about
{v['breathing_height']} above the floor, near the person being assessed. Outdoors, use the weather
hood; the PM-310 must not be used in rain without it. Clean the inlet with the brush supplied
every {v['inlet_hours']} of use, and more often in very dusty places.

The PM-310 counts particles by light scattering and converts counts to mass with a standard
density. For unusual dusts, such as flour or metal fumes, a gravimetric comparison gives a
correction factor that can be stored in the monitor.

## 5. Current (CL-8)

Close the jaw around one conductor only. Around a complete cable, the currents in the live and
neutral conductors cancel out and the meter reads close to zero. Before measuring DC current,
press ZERO with the jaw closed and empty, away from magnets and other cables.

Check that the meter's category rating matches the installation: the CL-8 is rated CAT IV
600 V, suitable for the origin of a low-voltage installation. Never measure above the meter's
range, and never open the battery compartment with the test leads connected.

## 6. Noise (SV-2)

Check the SV-2 with an acoustic calibrator at {v['sound_cal']} before and after each measurement
session. If the two checks differ by more than {v['sound_dev']}, the measurements of that session
are not valid and must be repeated.

Hold or mount the meter with the microphone {v['mic_height']} above the floor and at least
{v['wall_distance']} away from walls and other large surfaces, which reflect sound. Outdoors, always
use the windscreen; measurements in winds stronger than 5 m/s are not reliable even with it.

For noise at work, measure at the ears of the person exposed, or where their head would be.
Hearing protection is required from a daily exposure of {v['hearing']}, and the employer must
act to reduce noise from 85 dB(A).

## 7. Storage and transport

Store instruments in their cases, in a dry place at room temperature. Take the batteries out of
instruments that will not be used for more than a month: leaking batteries are the most common
cause of repairs we see. Rechargeable instruments (the HX-5 and the PM-310) keep their battery
healthiest when stored about half charged and topped up every three months.

In vehicles, do not leave instruments behind the windscreen in the sun; the inside of a parked
car can become far hotter than any instrument's storage range. When an instrument is shipped to
us, pack it in its case inside a sturdy box with padding, and enclose the return form so that
the laboratory knows what to do with it.

## 8. Measurement uncertainty in practice

The accuracy in a data sheet describes the instrument under reference conditions. A real
measurement also has uncertainty from the way it is made: a probe that was not deep enough, a
humidity meter that had not acclimatised, a microphone too close to a wall. In practice these
errors are often larger than the instrument's own. When a measurement decides something, such as
whether a room is safe or whether food may be served, repeat it, and report it with the
instrument, the method and the conditions.

Quillon Campus runs a one-day course on measurement uncertainty for customers and staff; ask the
sales team for dates.

## 9. When readings disagree

Two instruments seldom agree exactly. Before sending an instrument in, check that both measured
the same thing at the same place and time, that both are within their calibration, and that the
difference is larger than the two accuracies added together. If it is, contact the support
desk with both readings and the serial numbers.
"""


def annual_report():
    v = V
    fam = _table(("Instrument family", "Models", "Share of revenue", "Change on 2024"), [
        ("Temperature", "QT-20, QT-40", "38 %", "+4 %"),
        ("Climate", "HX-5", "17 %", "+6 %"),
        ("Air quality", "PM-310", "21 %", "+31 %"),
        ("Electrical", "CL-8", "14 %", "-2 %"),
        ("Acoustics", "SV-2", "10 %", "+7 %"),
    ])
    figures = _table(("", "2025", "2024"), [
        ("Revenue", v["revenue"], v["revenue_prev"]),
        ("Operating profit", v["op_profit"], v["op_profit_prev"]),
        ("Research and development", v["rnd"], "EUR 17.6 million"),
        ("Instruments shipped", v["shipped"], "262,000"),
        ("Calibrations performed", v["calibrations"], "57,900"),
        ("Employees at year end", v["employees"], "1,085"),
    ])
    return f"""# Annual report 2025

## Letter from the chief executive

Dear colleagues, customers and friends of Quillon Instruments,

2025 was the year in which our newest instrument family grew up. The PM-310 particulate monitor,
launched in 2023, had its first year as a mature product, and the demand for workplace dust
measurements that we had expected finally arrived, driven by stricter exposure limits in several
of our largest markets. Air quality is now our second-largest family after temperature.

At the same time, it was a year of hard work on the basics. The warehouse extension in Saint
Brivel opened in April, on time and within budget, and the solar roof on the new building started
producing in June. The calibration laboratory handled more instruments than ever before and
still shortened its average turnaround. Our support team in Kessany answered more tickets with
fewer escalations. None of this makes headlines, but it is what our customers notice.

Revenue grew to {v['revenue']}, from {v['revenue_prev']} in 2024, and operating profit to
{v['op_profit']}. As the statutes of the Quillon Renk Foundation require, a part of the profit is
shared with the people who earned it: every employee who worked for us for the whole year
receives a profit share of {v['profit_share']}, paid with the March salary. The rest is reinvested,
above all in research and development, which received {v['rnd']}, about 9 % of revenue.

I want to thank every colleague on our three sites for their work, our customers for their
trust and our distributors for carrying our instruments to {v['countries']} countries.

{v['ceo']}, chief executive

## The year in figures

{figures}

Export markets accounted for {v['export_share']} of revenue. The home market grew more slowly than
exports, mainly because public-sector orders for the CL-8 were postponed to 2026.

## Revenue by instrument family

{fam}

**Temperature.** The QT-20 remains our best-selling instrument; the 500,000th QT-20 left the
factory in September. Growth came mainly from food production customers and from distributors
in the south of our sales region. The QT-40 grew more slowly after two strong years, as several
large industrial customers had completed their fleet replacement in 2024.

**Climate.** The HX-5 benefited from a wave of damp surveys in social housing and from museums
that replaced older hygrometers. A firmware update in May added a logging mode with adjustable
intervals, which customers had asked for since the launch.

**Air quality.** The PM-310 grew by almost a third. Around 60 % of units went to occupational
hygienists and consultancies, the rest to industrial customers measuring their own workplaces.
The weather hood, introduced in February, opened the market for site-boundary measurements on
building sites.

**Electrical.** The CL-8 lost a little ground. Our largest distributor changed its ownership and
reduced its stock, and a large public tender was postponed. We expect the tender to be decided in
the first half of 2026.

**Acoustics.** The SV-2 continued to grow steadily, mainly through distributors. Many customers
buy the acoustic calibrator with the meter, which shows that the message about checking before and
after each session has been heard.

## Service: calibration, repair and support

The calibration laboratory in Saint Brivel performed {v['calibrations']} calibrations, of which
about a fifth were instruments of other makes. The average turnaround for standard calibration was
{v['cal_turnaround_avg']}, well inside the ten working days we promise. Demand for accredited
certificates grew by 12 %, mainly from customers in food production and the public sector.

The repair workshop repaired {v['repaired']} instruments. The most common cause, as in every year,
was leaking batteries in instruments stored for long periods; our field measurement guide now
gives more prominent advice on storage.

Premium support contracts grew by 15 %. The support desk in Kessany answered 92 % of Premium P1
tickets within the one-hour response time, and 97 % of Standard P1 tickets within eight business
hours. We are not yet satisfied with the first of these figures and have added a second engineer to
the evening rota.

## Operations

The warehouse extension at Saint Brivel, opened in April, adds {v['warehouse']} of storage and a
new shipping area. It allowed us to bring the spare parts store, previously rented in a
neighbouring town, back onto the site. Orders received before 14:00 now leave the same day in 98 %
of cases.

The solar roof on the extension has a peak output of {v['solar']}. Together with the older panels
on Hall A, our own solar panels provided {v['own_solar_share']} of the electricity used at Saint
Brivel in the second half of the year. Scope 1 and 2 emissions fell by {v['co2_down']} compared with
2024, mainly because the remaining gas heating in Hall B was replaced by heat pumps.

Instruments shipped rose to {v['shipped']}. Assembly productivity improved by 5 % after the
reorganisation of the QT-20 line into two parallel cells.

## People

We welcomed {v['hires']} new colleagues in 2025, most of them in Saint Brivel and in research and
development in Harnlow, and ended the year with {v['employees']} employees. Staff turnover was
{v['turnover']}, slightly lower than in 2024. {v['apprentices']} apprentices were in training at the
end of the year, in electronics, precision mechanics, logistics and office administration.

Colleagues spent on average {v['training_hours']} on training during the year, including Quillon
Campus courses. The mentoring programme had its largest intake so far. The employee survey, answered
by 81 % of colleagues, showed high scores for the meaning of our work and for team spirit, and lower
scores for the tools we use for internal communication; a new intranet is planned for 2026.

The works council and the executive team agreed a new rule on working from home and a revision of
the pay scales, both effective in 2026.

## Research and development

Research and development focused on two projects. The first is the next generation of our climate
instruments, the HX-7, which will add carbon dioxide measurement to humidity and temperature and is
planned for launch in the autumn of 2026. The second is Quillon Link 3, a new version of our
software with cloud storage for measurement records, which customers in regulated industries have
asked for. Both projects are on schedule.

We filed three patent applications, two of them for the optical chamber of the PM-310, which keeps
its calibration longer in dusty environments.

## Governance

Quillon Instruments is owned by the Quillon Renk Foundation. The supervisory board has {v['board']}
members and is chaired by Mara Quillon, co-founder of the company. It met six times in 2025. The
executive team consists of the chief executive, the chief financial officer, the director of
operations and the director of research and development.

## Outlook for 2026

We expect revenue to grow by between 5 and 7 % in 2026, with the strongest growth again in air
quality and a recovery in the electrical family once the postponed tender is decided. Investment
will focus on the launch of the HX-7, on the new intranet and on a second solar installation in
Harnlow. We will keep prices stable in 2026 for all instruments except the PM-310, whose list
price will follow the cost of its laser module.
"""


DOCUMENTS = {
    "annual-report-2025.md": annual_report,
    "field-measurement-guide.md": field_guide,
    "company-overview.md": company_overview,
    "product-catalogue.md": catalogue,
    "employee-handbook.md": employee_handbook,
    "travel-and-expenses-policy.md": travel_policy,
    "it-and-security-policy.md": it_policy,
    "health-and-safety.md": health_safety,
    "training-and-development.md": training_development,
    "customer-support-service-levels.md": support_sla,
    "calibration-service.md": calibration,
    "onboarding-guide.md": onboarding,
    "holiday-calendar-2027.md": holiday_calendar,
}
for _p in PRODUCTS:
    DOCUMENTS[f"datasheet-{_p['model'].lower()}.md"] = (lambda p=_p: datasheet(p))
for _s in SITES:
    DOCUMENTS[f"site-{_s['site'].lower().replace(' ', '-')}.md"] = (lambda s=_s: site_guide(s))
