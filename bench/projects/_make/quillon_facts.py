"""The fact table of the Quillon Instruments project: every number the documents, the
training rows and the evalset state comes from here (see make_quillon.py)."""

COMPANY = "Quillon Instruments"

PRODUCTS = [
    dict(model="QT-20", accessories=[("probe cleaning wipes, tub of 100", "12"), ("surface probe adapter", "27"), ("silicone protective boot", "14")], applications=["core temperatures in kitchens and food production", "supply and return temperatures of heating and cooling systems", "liquids in laboratories and schools"], type="probe thermometer", family="temperature",
         pitch="a pocket thermometer with a fixed stainless-steel probe for food, HVAC and lab checks",
         price="149", range="-50 to 300 °C", range_kw="300", acc="±0.3 °C", acc_kw="0.3",
         weight="128", battery="two AAA batteries", hours="600", ip="IP65", memory="500 readings",
         cal_months="12", warranty="2", launch="2019", optemp="-10 to 50 °C", cal_price="65",
         display="a backlit LCD", probe="a 120 mm stainless-steel probe, 3 mm in diameter",
         box="the thermometer, a protective cap for the probe, a wrist strap and two AAA batteries"),
    dict(model="QT-40", accessories=[("type K wire probe, 1 m", "24"), ("type K surface probe", "58"), ("type K immersion probe, 300 mm", "66")], applications=["oven and furnace profiles", "differential temperatures across heat exchangers", "process lines up to 1,370 °C with suitable probes"], type="dual-channel thermometer", family="temperature",
         pitch="a two-channel thermometer for type K thermocouples, for ovens, process lines and differential readings",
         price="279", range="-200 to 1,370 °C", range_kw="1,370|1370", acc="±0.5 °C", acc_kw="0.5",
         weight="214", battery="three AA batteries", hours="900", ip="IP54", memory="20,000 readings",
         cal_months="12", warranty="3", launch="2021", optemp="-10 to 50 °C", cal_price="89",
         display="a two-line backlit LCD showing both channels and their difference",
         probe="two sockets for miniature type K thermocouple plugs (one wire probe included)",
         box="the thermometer, one type K wire probe, a rubber boot, a carrying case and three AA batteries"),
    dict(model="HX-5", accessories=[("PTFE filter caps, pack of five", "18"), ("extension cable, 1.5 m, for the sensor head", "49"), ("salt check kit (sodium chloride)", "33")], applications=["damp surveys in buildings", "storage climates for archives, museums and warehouses", "drying of screeds and plaster"], type="humidity and dew point meter", family="climate",
         pitch="a hygrometer that shows relative humidity, temperature and dew point, for buildings, storage and museums",
         price="329", range="0 to 100 % relative humidity", range_kw="100", acc="±1.5 % RH", acc_kw="1.5",
         weight="176", battery="a built-in rechargeable lithium-ion battery", hours="40", ip="IP42",
         memory="10,000 readings", cal_months="18", warranty="2", launch="2020", optemp="0 to 50 °C", cal_price="110",
         display="a colour screen", probe="a fixed sensor head behind a replaceable PTFE filter cap",
         box="the meter, a USB-C cable, two spare filter caps and a soft pouch"),
    dict(model="PM-310", accessories=[("weather hood for outdoor use", "145"), ("spare zero filter", "29"), ("spare rechargeable battery", "119")], applications=["workplace dust exposure in carpentry, bakeries and quarries", "indoor air quality checks in offices and schools", "dust from building sites at the site boundary"], type="particulate monitor", family="air quality",
         pitch="a handheld laser particle counter for PM1, PM2.5 and PM10 dust in workplaces and outdoors",
         price="1,890", range="0 to 1,000 µg/m³", range_kw="1,000|1000", acc="±10 % of the reading", acc_kw="",
         weight="690", battery="a built-in rechargeable lithium-ion battery", hours="16", ip="IP40",
         memory="8 GB of storage, about one million readings", cal_months="12", warranty="2", launch="2023",
         optemp="0 to 40 °C", cal_price="240", display="a 3.5-inch colour touch screen",
         probe="an isokinetic inlet with a zero filter for daily zero checks",
         box="the monitor, a zero filter, a mains charger, a tripod adapter and a hard case"),
    dict(model="CL-8", accessories=[("flexible current probe, 3,000 A", "129"), ("silicone test leads with crocodile clips", "22"), ("magnetic hanging strap", "17")], applications=["load checks on distribution boards", "motor starting currents", "solar and battery systems (DC)"], type="clamp meter", family="electrical",
         pitch="a true-RMS clamp meter for AC and DC current up to 1,000 A, rated CAT IV 600 V, for electricians",
         price="219", range="0 to 1,000 A AC and DC", range_kw="1,000|1000", acc="±1.8 % of the reading", acc_kw="1.8",
         weight="395", battery="two AA batteries", hours="300", ip="IP54", memory="2,000 readings",
         cal_months="12", warranty="3", launch="2018", optemp="-10 to 50 °C", cal_price="75",
         display="a 6,000-count backlit LCD", probe="a 42 mm jaw and a pair of silicone test leads",
         box="the clamp meter, test leads, a carrying pouch and two AA batteries"),
    dict(model="SV-2", accessories=[("acoustic calibrator, 94 dB", "389"), ("outdoor windscreen kit", "64"), ("tripod with microphone holder", "79")], applications=["noise at work assessments", "neighbourhood noise complaints", "checking machines and ventilation for noise"], type="sound level meter", family="acoustics",
         pitch="a class 2 sound level meter for noise at work and environmental noise checks",
         price="649", range="30 to 130 dB(A)", range_kw="130", acc="±1.4 dB", acc_kw="1.4",
         weight="305", battery="four AA batteries", hours="30", ip="IP55", memory="100,000 readings",
         cal_months="24", warranty="2", launch="2022", optemp="-10 to 50 °C", cal_price="135",
         display="a backlit LCD with a bar graph", probe="a half-inch pre-polarised microphone under a windscreen",
         box="the meter, a foam windscreen, a USB cable, four AA batteries and a hard case"),
]

SITES = [
    dict(site="Harnlow", role="headquarters", what="head office, research and development, finance and HR",
         address="Ferrant Quay 14, Harnlow", staff="460", floors="6", reception="07:30 to 18:00",
         parking="210", ev="24", bikes="150", canteen="11:30 to 14:00", station="Harnlow Central station",
         walk="8", assembly="the car park by the north gate", manager="Jonna Veld", access="06:00 to 22:00",
         wifi="QI-Staff"),
    dict(site="Saint Brivel", role="factory", what="production, the calibration laboratory, the warehouse and shipping",
         address="Furnace Road 3, Saint Brivel", staff="520", floors="2", reception="06:30 to 17:00",
         parking="340", ev="12", bikes="90", canteen="11:00 to 13:30", station="the Furnace Road bus stop",
         walk="3", assembly="the sports field east of Hall C", manager="Rafael Dunmore", access="24 hours a day",
         wifi="QI-Plant"),
    dict(site="Kessany", role="sales and support office", what="sales, customer support and the training centre",
         address="Tannery Lane 51, Kessany", staff="160", floors="3", reception="08:00 to 17:30",
         parking="45", ev="6", bikes="60", canteen=None, station="the Kessany Ring tram stop",
         walk="4", assembly="the square in front of the building", manager="Alma Okafor", access="07:00 to 20:00",
         wifi="QI-Office"),
]

# support response times: priority -> (name, standard, premium)
SLA = [
    ("P1", "critical", "instrument unusable on a safety-relevant job", "8 business hours", "1 hour"),
    ("P2", "high", "instrument unusable, no safety impact", "2 business days", "4 hours"),
    ("P3", "normal", "a fault with a workaround", "5 business days", "1 business day"),
    ("P4", "question", "how-to questions and documentation", "10 business days", "3 business days"),
]

# travel bands: band -> (example cities, meal allowance per day, hotel cap per night)
BANDS = [
    ("A", "Valmora, Ostrey and Castellane", "64", "215"),
    ("B", "Harnlow, Dunmere and Port Selwyn", "53", "165"),
    ("C", "Kessany, Saint Brivel and most other towns", "44", "125"),
    ("D", "rural areas and small towns abroad", "36", "95"),
]

# annual leave by completed years of service
LEAVE = [("less than 5 years", "26"), ("5 to 9 years", "27"), ("10 to 14 years", "28"), ("15 years or more", "30")]
