"""Generators for the question-answer style tasks: open-domain QA, medical information, legal clauses.

Imported by generate.py; every text is composed from the templates and word lists below.
Each generator takes a random.Random and returns one row.
"""
from __future__ import annotations

import random

# ---------------------------------------------------------------- open-domain QA (no context)

CAPITALS = {"France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
            "Japan": "Tokyo", "China": "Beijing", "India": "New Delhi", "Egypt": "Cairo", "Kenya": "Nairobi",
            "Canada": "Ottawa", "Mexico": "Mexico City", "Brazil": "Brasília", "Argentina": "Buenos Aires",
            "Australia": "Canberra", "Russia": "Moscow", "Greece": "Athens", "Norway": "Oslo", "Sweden": "Stockholm",
            "Finland": "Helsinki", "Denmark": "Copenhagen", "Ireland": "Dublin", "Poland": "Warsaw",
            "Austria": "Vienna", "Hungary": "Budapest", "the Netherlands": "Amsterdam", "Belgium": "Brussels",
            "Turkey": "Ankara", "Thailand": "Bangkok", "South Korea": "Seoul", "Peru": "Lima", "Chile": "Santiago",
            "Cuba": "Havana", "Morocco": "Rabat", "Vietnam": "Hanoi", "Indonesia": "Jakarta",
            "the United Kingdom": "London", "the United States": "Washington, D.C.", "Switzerland": "Bern",
            "New Zealand": "Wellington"}
CAPITAL_QS = ["What is the capital of {c}?", "Which city is the capital of {c}?", "Name the capital city of {c}.",
              "What city serves as the capital of {c}?"]
PLANET_QS = [("Which planet is closest to the Sun?", "Mercury"), ("Which is the largest planet in the Solar System?", "Jupiter"),
             ("Which planet is known as the Red Planet?", "Mars"), ("Which planet is famous for its bright rings?", "Saturn"),
             ("Which planet do we live on?", "Earth"), ("Which planet is farthest from the Sun?", "Neptune"),
             ("Which planet is the hottest in the Solar System?", "Venus"), ("How many planets are in the Solar System?", "8"),
             ("Which planet comes after Earth in order from the Sun?", "Mars"),
             ("Which planet comes after Mars in order from the Sun?", "Jupiter"),
             ("What is the name of Earth's natural satellite?", "the Moon"), ("What star does Earth orbit?", "the Sun"),
             ("Which planet is second from the Sun?", "Venus"), ("Which planet is seventh from the Sun?", "Uranus")]
YOUNG = {"cow": "calf", "dog": "puppy", "cat": "kitten", "sheep": "lamb", "horse": "foal", "frog": "tadpole",
         "bear": "cub", "kangaroo": "joey", "duck": "duckling", "goose": "gosling", "swan": "cygnet", "deer": "fawn",
         "pig": "piglet", "owl": "owlet", "goat": "kid", "lion": "cub", "hen": "chick", "whale": "calf"}
LEGS = {"spider": "8", "ant": "6", "beetle": "6", "dog": "4", "horse": "4", "chicken": "2", "octopus": "8",
        "butterfly": "6", "cat": "4", "ostrich": "2"}
ANIMAL_FACTS = [("What is the largest animal on Earth?", "the blue whale"), ("What is the fastest land animal?", "the cheetah"),
                ("What is the tallest animal?", "the giraffe"), ("What do bees make?", "honey"),
                ("Which bird is a symbol of peace?", "the dove"), ("What do caterpillars turn into?", "butterflies or moths"),
                ("Which animal is known as the king of the jungle?", "the lion"), ("What do pandas mainly eat?", "bamboo")]
UNITS = [("minutes", "hour", 60), ("seconds", "minute", 60), ("hours", "day", 24), ("days", "week", 7),
         ("months", "year", 12), ("centimetres", "metre", 100), ("grams", "kilogram", 1000),
         ("metres", "kilometre", 1000), ("millilitres", "litre", 1000), ("millimetres", "centimetre", 10)]
OPPOSITES = [("hot", "cold"), ("big", "small"), ("fast", "slow"), ("up", "down"), ("happy", "sad"), ("light", "dark"),
             ("open", "closed"), ("early", "late"), ("full", "empty"), ("strong", "weak"), ("rich", "poor"),
             ("young", "old"), ("wet", "dry"), ("loud", "quiet"), ("hard", "soft"), ("push", "pull"),
             ("win", "lose"), ("inside", "outside"), ("thick", "thin"), ("high", "low"), ("clean", "dirty"),
             ("heavy", "light"), ("buy", "sell"), ("true", "false"), ("asleep", "awake"), ("question", "answer"),
             ("cheap", "expensive"), ("north", "south"), ("east", "west"), ("day", "night")]
NEVER_ASKED = {"light", "old", "thin", "quiet", "small", "lose", "slow"}  # more than one common opposite
PLURALS = {"mouse": "mice", "child": "children", "foot": "feet", "tooth": "teeth", "goose": "geese", "man": "men",
           "woman": "women", "person": "people", "leaf": "leaves", "knife": "knives", "wolf": "wolves",
           "box": "boxes", "city": "cities", "baby": "babies", "bus": "buses", "potato": "potatoes",
           "sheep": "sheep", "fish": "fish", "deer": "deer", "cactus": "cacti", "ox": "oxen", "half": "halves",
           "church": "churches", "dish": "dishes", "story": "stories", "book": "books", "day": "days",
           "life": "lives", "wife": "wives", "hero": "heroes", "glass": "glasses", "loaf": "loaves"}


def openqa(rng: random.Random) -> dict:
    kind = rng.choice(["capital", "capital", "planet", "animal", "unit", "unit", "opposite", "plural"])
    if kind == "capital":
        country = rng.choice(sorted(CAPITALS))
        return {"question": rng.choice(CAPITAL_QS).format(c=country), "answer": CAPITALS[country]}
    if kind == "planet":
        q, a = rng.choice(PLANET_QS)
        return {"question": q, "answer": a}
    if kind == "animal":
        sub = rng.randrange(3)
        if sub == 0:
            animal = rng.choice(sorted(YOUNG))
            q = rng.choice(["What is a baby {a} called?", "What do you call a young {a}?"]).format(a=animal)
            return {"question": q, "answer": YOUNG[animal]}
        if sub == 1:
            animal = rng.choice(sorted(LEGS))
            word = "arms" if animal == "octopus" else "legs"
            return {"question": f"How many {word} does {'an' if animal[0] in 'aeiou' else 'a'} {animal} have?",
                    "answer": LEGS[animal]}
        q, a = rng.choice(ANIMAL_FACTS)
        return {"question": q, "answer": a}
    if kind == "unit":
        small, big, factor = rng.choice(UNITS)
        n = rng.randint(2, 12)
        q = rng.choice(["How many {s} are in {n} {b}s?", "How many {s} are there in {n} {b}s?",
                        "Convert {n} {b}s to {s}."]).format(s=small, n=n, b=big)
        return {"question": q, "answer": str(n * factor)}
    if kind == "opposite":
        a, b = rng.choice(OPPOSITES)
        if rng.random() < 0.5 and b not in NEVER_ASKED:
            a, b = b, a
        q = rng.choice(["What is the opposite of '{w}'?", "Give the opposite of the word '{w}'.",
                        "What word means the opposite of '{w}'?"]).format(w=a)
        return {"question": q, "answer": b}
    noun = rng.choice(sorted(PLURALS))
    q = rng.choice(["What is the plural of '{w}'?", "What is the plural form of the word '{w}'?",
                    "One {w}, two ...? Give the plural."]).format(w=noun)
    return {"question": q, "answer": PLURALS[noun]}


# ---------------------------------------------------------------- medical information (general, cautious)

MEDICAL = [  # (question phrasings, answer); general information, conservative
    (["What is ibuprofen used for?", "What does ibuprofen treat?", "Why would someone take ibuprofen?"],
     "Ibuprofen is an anti-inflammatory painkiller (an NSAID) used for pain, fever and inflammation, such as headaches, "
     "period pain or sprains. Take it with food, and check with a doctor or pharmacist first if you have stomach ulcers, "
     "kidney problems, asthma or are pregnant."),
    (["What is paracetamol used for?", "What does acetaminophen do?", "When is paracetamol a good choice?"],
     "Paracetamol (acetaminophen) relieves mild to moderate pain and lowers fever. Never take more than the dose on the "
     "pack, because too much can seriously damage the liver."),
    (["What are the typical signs of dehydration?", "How can I tell if I am dehydrated?",
      "What are the symptoms of dehydration?"],
     "Common signs are thirst, dark yellow urine, passing little urine, a dry mouth, tiredness and dizziness. See a "
     "doctor urgently if there is confusion, fainting or no urine for many hours, especially in babies or older people."),
    (["How should I treat mild dehydration?", "What should I drink if I am dehydrated?",
      "What helps with mild dehydration?"],
     "Drink fluids little and often, such as water or an oral rehydration solution. See a doctor if you cannot keep "
     "fluids down or you are not feeling better within a day."),
    (["What are antihistamines used for?", "Do antihistamines help with hay fever?",
      "What does cetirizine help with?"],
     "Antihistamines such as cetirizine or loratadine ease allergy symptoms like sneezing, itchy eyes and a runny nose. "
     "Some types cause drowsiness, so read the label before driving."),
    (["What are the usual symptoms of a common cold?", "How do I know if I have a cold?",
      "How long does a common cold last?"],
     "A cold usually brings a runny or blocked nose, sore throat, sneezing and a cough, and it normally clears up in "
     "about 7 to 10 days. See a doctor if it lasts more than three weeks or you have trouble breathing."),
    (["When should I worry about a fever?", "What temperature counts as a fever?",
      "When is a fever a reason to see a doctor?"],
     "In adults a fever is usually a temperature of 38°C (100.4°F) or higher. See a doctor if it is very high, lasts "
     "more than three days, or comes with a stiff neck, a rash, confusion or difficulty breathing."),
    (["What do antacids do?", "Can antacids help with heartburn?", "What can I take for occasional heartburn?"],
     "Antacids neutralise stomach acid and can ease occasional heartburn and indigestion for a short time. See a doctor "
     "if heartburn happens often, or if you have trouble swallowing or unexplained weight loss."),
    (["Can children take aspirin?", "Is aspirin safe for teenagers?", "Should I give aspirin to a child with a fever?"],
     "Aspirin should not be given to children under 16 unless a doctor advises it, because it is linked to Reye's "
     "syndrome, a rare but serious illness. Paracetamol or ibuprofen made for children are usually used instead."),
    (["What is loperamide used for?", "Can I take loperamide for diarrhoea?", "How does loperamide help?"],
     "Loperamide slows the gut and can reduce diarrhoea in adults for a short time, but it does not treat the cause. "
     "See a doctor if there is blood in the stool, a high fever, or the diarrhoea lasts more than two days."),
    (["How should I treat a mild sunburn?", "What helps sunburn?", "What can I do for sunburned skin?"],
     "Cool the skin with a cool shower or damp cloth, drink plenty of water, and use a soothing after-sun or aloe gel. "
     "See a doctor if there is widespread blistering, a fever or you feel unwell."),
    (["What should I do after a bee sting?", "How do I treat a wasp sting?", "What helps an insect sting?"],
     "Remove the sting if you can see it, wash the area and hold something cold on it; an antihistamine may ease the "
     "itching. Call emergency services at once if the face or throat swells or breathing becomes difficult."),
    (["What are the typical signs of a migraine?", "How is a migraine different from a normal headache?",
      "What does a migraine feel like?"],
     "A migraine is often a throbbing headache on one side of the head, sometimes with nausea and sensitivity to light "
     "or sound. Get urgent help for a sudden, severe headache or one with weakness, confusion or a stiff neck."),
    (["Can I take paracetamol and ibuprofen together?", "Is it safe to combine ibuprofen and paracetamol?",
      "Can adults alternate paracetamol and ibuprofen?"],
     "Most adults can take paracetamol and ibuprofen at the same time or alternate them, as long as each is taken at "
     "its own recommended dose. Ask a pharmacist first if you take other medicines or have a long-term condition."),
    (["What is the maximum daily dose of paracetamol for adults?", "How much paracetamol can an adult take in a day?",
      "How many paracetamol tablets can I take in 24 hours?"],
     "For most healthy adults the limit is 4 grams in 24 hours (usually eight 500 mg tablets), with at least 4 hours "
     "between doses. Always follow the label, and ask a doctor about a lower dose if you have liver problems or drink "
     "alcohol regularly."),
    (["What are the signs of a urinary tract infection?", "How do I know if I have a UTI?",
      "What are common UTI symptoms?"],
     "Typical signs are a burning feeling when passing urine, needing to go often or urgently, and cloudy or "
     "strong-smelling urine. See a doctor, as a UTI often needs antibiotics, and go promptly if you have a fever or "
     "back pain."),
    (["What helps a sore throat?", "How can I soothe a sore throat?", "How long does a sore throat usually last?"],
     "Most sore throats are caused by viruses and improve within a week; warm drinks, lozenges and paracetamol or "
     "ibuprofen can help. See a doctor if it lasts longer than a week or you have difficulty swallowing or breathing."),
    (["What are oral rehydration salts for?", "When should I use oral rehydration solution?",
      "What do rehydration sachets do?"],
     "Oral rehydration salts replace the water, salts and sugar lost through diarrhoea or vomiting. Mix them with the "
     "exact amount of clean water stated on the pack."),
    (["What are the signs of heat exhaustion?", "How can I tell if someone has heat exhaustion?",
      "What does heat exhaustion look like?"],
     "Signs include heavy sweating, headache, dizziness, nausea, cramps and feeling very tired. Move to somewhere cool "
     "and drink water, and call emergency services if there is no improvement within 30 minutes or the person becomes "
     "confused."),
    (["Can young children take cough medicine?", "Is cough syrup safe for toddlers?",
      "Should I give cold medicine to my young child?"],
     "Over-the-counter cough and cold medicines are not recommended for young children, so always check the age on "
     "the label and ask a pharmacist. See a doctor if a child has trouble breathing or a high fever."),
    (["What is hydrocortisone cream used for?", "Can I use hydrocortisone cream for itchy skin?",
      "What does 1% hydrocortisone cream treat?"],
     "Mild 1% hydrocortisone cream can ease itching and redness from insect bites, eczema or minor skin irritation. Use "
     "a thin layer for a few days only, and ask a doctor before using it on the face or on broken skin."),
    (["What are the signs of a severe allergic reaction?", "How do I recognise anaphylaxis?",
      "When is an allergic reaction an emergency?"],
     "Swelling of the lips, tongue or throat, difficulty breathing, wheezing or feeling faint can mean a severe "
     "allergic reaction. Call emergency services immediately and use an adrenaline auto-injector if one has been "
     "prescribed."),
    (["What can I do about constipation?", "How can I relieve mild constipation?", "What helps with constipation?"],
     "Drinking more water, eating more fibre and staying active often help, and an over-the-counter laxative can be "
     "used for a short time. See a doctor if it lasts more than a few weeks or there is blood in the stool."),
    (["Can ibuprofen upset the stomach?", "Why should ibuprofen be taken with food?",
      "Does ibuprofen cause stomach problems?"],
     "Yes, ibuprofen can irritate the stomach, so take it with food or milk at the lowest dose that works. Stop and see "
     "a doctor if you notice black stools, vomit blood or have severe stomach pain."),
    (["How can I tell the flu from a cold?", "What is the difference between flu and a cold?",
      "What are the typical symptoms of flu?"],
     "Flu usually starts suddenly with fever, aches and exhaustion, while a cold comes on gradually and mainly affects "
     "the nose and throat. See a doctor if you are in a high-risk group or you get worse after a few days."),
    (["How do I stop a nosebleed?", "What should I do during a nosebleed?", "What is the right way to treat a nosebleed?"],
     "Sit up, lean forward and pinch the soft part of the nose for 10 to 15 minutes while breathing through your mouth. "
     "Get urgent help if the bleeding has not stopped after that, or if it followed a head injury."),
    (["How should I treat a minor burn?", "What is the first aid for a small burn?", "What do I do if I burn my hand?"],
     "Cool the burn under cool running water for 20 minutes, then cover it loosely with cling film or a clean "
     "dressing, and do not use ice or butter. See a doctor if the burn is large, deep, or on the face, hands or genitals."),
    (["What helps a tension headache?", "What does a tension headache feel like?",
      "How can I treat a mild headache?"],
     "A tension headache often feels like a tight band around the head and usually eases with rest, fluids and "
     "paracetamol or ibuprofen. See a doctor if headaches are frequent or severe, or you need painkillers on most days."),
    (["What are the signs of conjunctivitis?", "How do I know if I have pink eye?", "Does conjunctivitis go away on its own?"],
     "Conjunctivitis causes red, itchy or gritty eyes, sometimes with a sticky discharge, and often clears up by "
     "itself within one to two weeks. See a doctor if you have eye pain, changes in vision or sensitivity to light."),
    (["How long can I use a decongestant nasal spray?", "Are decongestant sprays safe to use every day?",
      "What do decongestants do?"],
     "Decongestant sprays and tablets can ease a blocked nose for a short time, but sprays should not usually be used "
     "for more than about a week. Ask a pharmacist first if you have high blood pressure or heart problems."),
]
MED_PREFIXES = ["", "Quick question: ", "Hi, ", "Hello. ", "I'd like some general information. ",
                "Asking for a family member: ", "Sorry if this is basic, but "]


def medical(rng: random.Random) -> dict:
    questions, answer = rng.choice(MEDICAL)
    prefix, q = rng.choice(MED_PREFIXES), rng.choice(questions)
    if prefix.endswith(("but ", ", ")):
        q = q[0].lower() + q[1:]
    return {"question": prefix + q, "answer": answer}


# ---------------------------------------------------------------- legal clauses

PARTIES = [("the Supplier", "the Customer"), ("the Company", "the Consultant"), ("the Licensor", "the Licensee"),
           ("the Landlord", "the Tenant"), ("the Employer", "the Employee"), ("the Seller", "the Buyer")]
JURISDICTIONS = ["England and Wales", "Scotland", "Ireland", "the State of New York", "the State of California",
                 "Ontario", "Singapore", "New South Wales"]
AMOUNTS = ["$50,000", "$250,000", "£25,000", "£100,000", "€75,000", "€1,000,000", "$10,000", "£500,000"]
PLACES = ["London", "Manchester", "Dublin", "Toronto", "Sydney", "Boston", "Singapore", "Edinburgh"]


def _lc(party: str) -> str:
    return party[0].lower() + party[1:]


def legal(rng: random.Random) -> dict:
    a, b = rng.choice(PARTIES)
    if rng.random() < 0.5:
        a, b = b, a
    la, lb, Aa = _lc(a), _lc(b), a[0].upper() + a[1:]
    days, years, months = rng.choice([7, 14, 30, 45, 60, 90]), rng.randint(1, 5), rng.choice([3, 6, 12, 18, 24])
    amount, law = rng.choice(AMOUNTS), rng.choice(JURISDICTIONS)
    yrs = f"{years} year{'s' if years > 1 else ''}"
    doc = rng.choice(["Agreement", "Contract", "Services Agreement", "Licence Agreement"])
    kind = rng.choice(["termination", "breach", "confidentiality", "liability", "law", "payment", "notice",
                       "noncompete"])
    if kind == "termination":
        clause = rng.choice(["Either party may terminate this {doc} at any time by giving not less than {d} days' "
                             "written notice to the other party.",
                             "This {doc} may be terminated by either party for convenience upon {d} days' prior "
                             "written notice.",
                             "Either party may end this {doc} without cause on {d} days' notice in writing."]).format(d=days, doc=doc)
        expl = f"Either side can end the contract for any reason, but must warn the other side in writing at least {days} days beforehand."
    elif kind == "breach":
        clause = (f"{Aa} may terminate this {doc} with immediate effect if {b} commits a material breach and fails "
                  f"to remedy it within {days} days of receiving written notice of the breach.")
        expl = (f"If {lb} seriously breaks the contract, {la} must first give written notice; if the problem is not fixed "
                f"within {days} days, {la} can end the contract straight away.")
    elif kind == "confidentiality":
        clause = rng.choice([f"{b[0].upper() + b[1:]} shall keep confidential all Confidential Information disclosed by {a} "
                             f"and shall not disclose it to any third party during the term of this {doc} and for "
                             f"{yrs} after its termination.",
                             f"The obligations of confidentiality in this clause shall survive termination of this "
                             f"Agreement for a period of {yrs}, and {b} shall not use Confidential Information of {a} "
                             f"for any purpose other than performing this {doc}."])
        expl = (f"{lb[0].upper() + lb[1:]} must keep {la}'s confidential information secret and use it only for this contract, "
                f"both while it runs and for {yrs} after it ends.")
    elif kind == "liability":
        expl = f"If something goes wrong, the most {la} can be made to pay under this contract is {amount} in total"
        if rng.random() < 0.5:
            clause = (f"The total aggregate liability of {a} arising out of or in connection with this {doc} "
                      f"shall not exceed {amount}.")
            expl += "."
        else:
            clause = (f"Save for liability which cannot be limited by law, {a}'s maximum liability under this "
                      f"{doc}, whether in contract, tort or otherwise, is limited to {amount}.")
            expl += ", except where the law does not allow such a limit."
    elif kind == "law":
        clause = rng.choice([f"This {doc} and any dispute arising from it shall be governed by the laws of {law}, "
                             f"and the parties submit to the exclusive jurisdiction of the courts of {law}.",
                             f"This {doc} is governed by the law of {law}. The courts of {law} shall have exclusive "
                             f"jurisdiction to settle any dispute arising out of or in connection with it."])
        expl = f"The contract is interpreted under the law of {law}, and any dispute must be decided by the courts of {law}."
    elif kind == "payment":
        rate = rng.choice(["1", "1.5", "2"])
        clause = (f"{b[0].upper() + b[1:]} shall pay each undisputed invoice within {days} days of the invoice date. Any "
                  f"amount not paid when due shall accrue interest at {rate}% per month until paid.")
        expl = (f"{lb[0].upper() + lb[1:]} has {days} days from the invoice date to pay, and late amounts build up interest of "
                f"{rate}% a month until they are paid.")
    elif kind == "notice":
        bdays = rng.choice([2, 3, 5])
        how = rng.choice(["by hand or registered post", "by recorded delivery", "by courier"])
        clause = (f"Any notice under this {doc} shall be in writing and delivered {how} to the "
                  f"address of the receiving party, and shall be deemed received {bdays} business days after dispatch.")
        expl = (f"Formal notices must be written and delivered {how}; such a notice counts as "
                f"received {bdays} business days after it is sent.")
    else:
        place, km = rng.choice(PLACES), rng.choice([10, 25, 50, 100])
        clause = (f"For a period of {months} months following termination, {b} shall not, within {km} kilometres of "
                  f"{place}, engage in any business that competes with the business of {a}.")
        expl = (f"For {months} months after the contract ends, {lb} may not run or work for a competing business "
                f"within {km} km of {place}.")
    return {"clause": clause, "explanation": expl}
