"""Generators for the text tasks: news topics, extractive QA, summarization, creative writing.

Imported by generate.py; every text is composed from the templates and word lists below.
Each generator takes a random.Random and returns one row.
"""
from __future__ import annotations

import random

# ---------------------------------------------------------------- news topic classification

COUNTRIES = ["Valdoria", "the Kestrel Islands", "Marenland", "Ostrevia", "Tesseny", "Korvania",
             "the Sundar Federation", "Elbany", "Quillmark", "Norvessa", "Aldmoor", "Caspery"]
CITIES = ["Port Aster", "Brennick", "Lowmarsh", "Halden", "Ferrow", "Queensgate", "Tallis", "Wyncombe",
          "Sorrel Bay", "Dunmere", "Ashby Cross", "Kelvin Ford"]
PEOPLE = ["Mara Ellison", "Tobias Renn", "Ines Calder", "Rafael Ortun", "Hana Veld", "Jonah Pike",
          "Selma Grady", "Victor Osei", "Lila Marsh", "Arun Tal", "Greta Lund", "Felix Amari"]
TEAMS = ["Halden Rovers", "Port Aster United", "the Ferrow Hawks", "Brennick City", "the Tallis Tigers",
         "Lowmarsh Athletic", "the Dunmere Stags", "Queensgate Wanderers"]
COMPANIES = ["Northwind Foods", "Brightline Telecom", "Corvel Motors", "Pellham Bank", "Solace Energy",
             "Tidewater Shipping", "Greyfield Retail", "Lumen Pharma", "Orbis Software", "Ridgeway Steel"]
SPORTS = ["tennis", "cycling", "rugby", "football", "swimming", "athletics", "rowing", "basketball"]
FIELDS = ["astronomers", "biologists", "physicists", "geologists", "chemists", "climate scientists",
          "neuroscientists", "marine researchers"]

NEWS = {
    "world": [
        "{country} and {country2} sign border agreement after decade of talks",
        "Protests continue in {city} as {country} parliament debates new constitution",
        "{country} recalls ambassador amid dispute with {country2}",
        "Floods displace thousands in northern {country}; aid convoys arrive",
        "Election in {country} goes to a second round as no candidate wins majority",
        "Foreign ministers meet in {city} to discuss ceasefire in the east",
        "{country} president {person} survives confidence vote",
        "United Nations envoy visits {country} refugee camps",
        "{country} lifts curfew in {city} after week of unrest",
        "Peace talks between {country} and rebel groups resume in {city}",
        "{country} opens embassy in {country2} for the first time",
        "Earthquake strikes near {city}, {country}; rescue teams search rubble",
    ],
    "sports": [
        "{team} beat {team2} 3-1 to reach the cup final",
        "{person} wins national {sport} title after dramatic final",
        "{team} sack manager after run of {number} defeats",
        "{person} breaks national record in {sport} at {city} meet",
        "Injury rules {person} out of the {sport} championship",
        "{team} and {team2} share points in goalless draw",
        "{person} claims gold as {country} top the {sport} medal table",
        "Late goal sends {team} to the top of the league",
        "{person} retires from {sport} after {number} seasons",
        "{team} captain signs contract extension until 2030",
        "Rain delays final day of {sport} tournament in {city}",
    ],
    "business": [
        "{company} profits rise {number} percent on strong demand",
        "{company} to cut {number}00 jobs as sales slow",
        "Shares in {company} fall after weak quarterly forecast",
        "{company} agrees takeover of rival in deal worth {number} billion",
        "Central bank of {country} holds interest rates steady",
        "{company} opens new factory in {city}, creating {number}00 jobs",
        "Inflation in {country} eases to {number} percent",
        "{company} chief executive {person} steps down",
        "Oil prices climb as supply concerns grow",
        "{company} shareholders reject pay plan for board",
        "Retail sales in {country} fall for a third month",
    ],
    "science": [
        "{field} discover new species of frog in the forests of {country}",
        "Telescope captures clearest image yet of a distant galaxy",
        "{field} report faster-than-expected melting of mountain glaciers",
        "New battery material could double storage capacity, study finds",
        "Mission to study the moons of Jupiter passes key test",
        "Fossil found near {city} is {number} million years old, say {field}",
        "{field} map the brain circuits behind memory in mice",
        "Deep-sea vents host unexpected bacteria, expedition reports",
        "Comet visible to the naked eye next month, {field} say",
        "Gene study sheds light on how plants survive drought",
        "Researchers at {city} university build smaller quantum sensor",
    ],
}
# confusable items: the topic follows what the story is about, not its setting
CONFUSABLE = {
    "business": ["{team} report record revenue from shirt sales and sponsorship",
                 "Broadcaster pays {number} billion for {sport} television rights",
                 "{team} owners agree sale of club to investment group",
                 "Sportswear maker {company} shares jump after {sport} sponsorship deal",
                 "{country} tourism earnings rise after hosting {sport} championship"],
    "science": ["Study of {sport} players links repeated head impacts to memory loss",
                "{field} test new running shoe material in the lab",
                "{company} trial of new vaccine shows strong immune response",
                "Satellite data show {country} forests shrinking faster than thought"],
    "world": ["{country} bans imports from {country2} in widening diplomatic row",
              "{country} boycotts {sport} games hosted by {country2}",
              "Leaders of {country} and {country2} agree to share river water"],
    "sports": ["{person} of {country} wins marathon on a hot day in {city}",
               "{team} stadium sold out for derby against {team2}"],
}
LEDES = {
    "world": ["Officials said talks would continue next week.", "The government urged calm.",
              "Neighbouring states called for restraint.", "Observers expect a decision within days."],
    "sports": ["Fans celebrated long into the night.", "The coach praised the team's defence.",
               "The next match is on Saturday.", "It was the club's best result this season."],
    "business": ["Analysts had expected a smaller change.", "The company's shares closed higher.",
                 "Investors welcomed the news.", "The figures cover the three months to June."],
    "science": ["The findings are published in a peer-reviewed journal.", "Further tests are planned.",
                "The team used data collected over five years.", "Other researchers called the result promising."],
}


def _news_fill(rng: random.Random, template: str) -> str:
    country, country2 = rng.sample(COUNTRIES, 2)
    team, team2 = rng.sample(TEAMS, 2)
    return template.format(country=country, country2=country2, team=team, team2=team2, city=rng.choice(CITIES),
                           person=rng.choice(PEOPLE), company=rng.choice(COMPANIES), sport=rng.choice(SPORTS),
                           field=rng.choice(FIELDS), number=rng.randint(2, 12))


def news(rng: random.Random) -> dict:
    topic = rng.choice(["world", "sports", "business", "science"])
    pool = CONFUSABLE[topic] if rng.random() < 0.15 else NEWS[topic]
    headline = _news_fill(rng, rng.choice(pool))
    headline = headline[0].upper() + headline[1:]
    if rng.random() < 0.5:
        headline += ". " + rng.choice(LEDES[topic])
    return {"headline": headline, "topic": topic}


# ---------------------------------------------------------------- extractive QA (SQuAD format)

TOWN_NAMES = ["Wrenmoor", "Calloway Bend", "Stonehithe", "Marrowdale", "Ebbworth", "Fennick", "Larkspur Hollow",
              "Ostley", "Penhallow", "Quarry Vale", "Rookhaven", "Saltmere", "Thistlecombe", "Umberlee", "Vantor"]
FOUNDERS = ["Edwin Harrowgate", "Matilda Crewe", "Osric Fallow", "Beatrix Lorne", "Cornelius Vane",
            "Adela Brightwater", "Silas Mornington", "Honora Pell", "Ambrose Kettering", "Winifred Ashcombe"]
REGIONS = ["the Corran Valley", "the eastern Halmere coast", "the Dunlow Hills", "the Pellish lowlands",
           "the northern Ardent plateau", "the Serrow estuary", "the Kinmouth peninsula"]
INDUSTRIES = ["wool weaving", "salt production", "clockmaking", "shipbuilding", "paper milling",
              "cheese making", "glassblowing", "slate quarrying"]
INVENTIONS = ["the folding lantern", "the tidal pump", "the spring-loaded loom", "the copper heat coil",
              "the pocket barometer", "the rotary seed drill", "the mirror telegraph", "the steam kettle valve"]
PROFESSIONS = ["engineer", "chemist", "watchmaker", "physician", "surveyor", "botanist", "architect", "cartographer"]
RIVERS = ["the Averly", "the Brisk", "the Colm", "the Drennan", "the Esker", "the Farrow", "the Glinn", "the Hestle"]
SEAS = ["the Sallow Sea", "the Northern Gulf", "Lake Orrin", "the Marle Basin", "the Bay of Tiering"]
FISH = ["silver trout", "river eels", "grey perch", "spotted salmon", "bream"]


GENERIC_FILLER = [
    "Much of what is known about {name} comes from parish books, letters and old maps.",
    "Local historians have written several books about {name}.",
    "{name} is mentioned in most guidebooks to the region.",
    "Some details about {name} remain uncertain because early records were lost in a fire.",
    "A short documentary about {name} was shown on regional television.",
    "School children sometimes learn about {name} as part of their history lessons.",
    "Old photographs connected with {name} can be seen in the county museum.",
    "Some of the stories told about {name} are probably legends rather than fact.",
    "Scholars disagree about several dates connected with {name}.",
    "An illustrated map from the period shows {name} in some detail.",
    "The name {name} is spelled in several different ways in old documents.",
    "A society of enthusiasts meets twice a year to discuss {name}.",
    "Articles about {name} have appeared in popular magazines.",
    "Interest in {name} grew again in the late twentieth century.",
    "The regional archive keeps a large collection of material about {name}."]
EMBLEMS = ["a silver heron", "a green oak", "a golden wheel", "a red fox", "a blue anchor", "a black swan"]
RIVALS = ["Ottilie Fairbank", "Gideon Marsh", "Perpetua Hale", "Lucan Stroud"]


def _town(rng):
    name, founder, region, industry = (rng.choice(TOWN_NAMES), rng.choice(FOUNDERS), rng.choice(REGIONS),
                                       rng.choice(INDUSTRIES))
    year, bridges = str(rng.randint(1150, 1890)), str(rng.randint(3, 19))
    pop, emblem = f"{rng.randint(2, 90)},{rng.randint(100, 999)}", rng.choice(EMBLEMS)
    founded = f"{name} was founded in {year} by the merchant {founder}."
    facts = [  # (sentence, question, answer); a sentence may carry several facts
        (f"{name} is a market town in {region}.", f"Where is {name} located?", region),
        (founded, f"Who founded {name}?", founder),
        (founded, f"When was {name} founded?", year),
        (f"The town grew rich from {industry}, which still employs many residents.",
         f"What industry made {name} rich?", industry),
        (f"A total of {bridges} stone bridges cross the canals of the old quarter of {name}.",
         f"How many stone bridges cross the canals of {name}?", bridges),
        (f"The most recent census counted {pop} inhabitants in {name}.", f"How many inhabitants does {name} have?", pop),
        (f"The coat of arms of {name} shows {emblem}.", f"What does the coat of arms of {name} show?", emblem),
    ]
    filler = [f"The town hall of {name} was rebuilt after a fire in the following century.",
              f"Visitors often remark on the narrow streets and the painted shutters of {name}.",
              "A weekly market is held in the central square every Thursday.",
              "The parish church has a bell tower that can be seen from the surrounding fields.",
              "Several old guild houses have been turned into small museums.",
              "The climate is mild, with wet winters and warm, dry summers.",
              "A railway line reached the town in the nineteenth century and brought new trade.",
              "Many families have lived in the same houses for several generations.",
              f"Every autumn {name} holds a harvest festival with music and dancing.",
              "The old city walls survive only in fragments near the northern gate.",
              "A public library opened in the former customs house.",
              "The surrounding farmland produces barley, apples and hay.",
              "Walking paths lead from the edge of town into the nearby woods.",
              "The local football club plays its home games beside the river meadow."]
    return name, facts, filler


def _person(rng):
    name, prof, invention = rng.choice(FOUNDERS), rng.choice(PROFESSIONS), rng.choice(INVENTIONS)
    town, died = rng.sample(TOWN_NAMES, 2)
    born, patents, mentor = str(rng.randint(1720, 1890)), str(rng.randint(4, 40)), rng.choice(RIVALS)
    birth = f"{name} was {'an' if prof[0] in 'aeiou' else 'a'} {prof} born in {town} in {born}."
    facts = [
        (birth, f"Where was {name} born?", town),
        (birth, f"When was {name} born?", born),
        (f"{name} is best remembered for designing {invention}.", f"What is {name} best remembered for designing?",
         invention),
        (f"As a young apprentice, {name} studied under {mentor}.", f"Who taught {name} as an apprentice?", mentor),
        (f"Over a long career {name} was granted {patents} patents.", f"How many patents was {name} granted?", patents),
        (f"{name} spent the last years of a long life in {died}.", f"Where did {name} spend the last years of life?",
         died),
    ]
    filler = [f"{name} kept detailed notebooks that are now held in a regional archive.",
              "Contemporaries described the workshop as cramped but very well organised.",
              "The early years of the career were marked by money troubles.",
              f"Letters written by {name} show a keen interest in music and poetry.",
              "Several prototypes were lost when a storage shed flooded.",
              f"A small museum dedicated to the work of {name} opened many decades later.",
              "The design was copied widely, often without permission.",
              "Later in life the inventor gave public lectures on practical mechanics.",
              "A street in the old town was eventually renamed in the inventor's honour.",
              "Critics at first dismissed the idea as impractical.",
              "Two of the original drawings were sold at auction last century.",
              "Apprentices from the workshop went on to found firms of their own.",
              "The inventor rarely travelled and preferred to work alone.",
              "Historians still debate how much help came from assistants."]
    return name, facts, filler


def _river(rng):
    river, sea, town, fish = rng.choice(RIVERS), rng.choice(SEAS), rng.choice(TOWN_NAMES), rng.choice(FISH)
    length, tribs, surveyor = str(rng.randint(40, 900)), str(rng.randint(2, 14)), rng.choice(FOUNDERS)
    year, cap = str(rng.randint(1600, 1880)), river[0].upper() + river[1:]
    survey = f"{cap} was first mapped in full by {surveyor} in {year}."
    facts = [
        (f"{cap} is a river that flows into {sea}.", f"Where does {river} flow into?", sea),
        (f"{cap} is {length} kilometres long from source to mouth.", f"How many kilometres long is {river}?", length),
        (f"The largest town on the banks of {river} is {town}.", f"What is the largest town on {river}?", town),
        (survey, f"Who first mapped {river} in full?", surveyor),
        (survey, f"When was {river} first mapped in full?", year),
        (f"{cap} is fed by {tribs} tributaries.", f"How many tributaries feed {river}?", tribs),
        (f"Anglers come to {river} for its {fish}.", f"What fish do anglers come to {river} for?", fish),
    ]
    filler = ["The upper course runs through steep, wooded gorges.",
              "In spring the water level can rise quickly after heavy rain.",
              "Old mills line the middle stretch of the river.",
              "Herons and kingfishers are common along the banks.",
              "A towpath follows the river for much of its length.",
              "Flood defences were strengthened after a severe winter.",
              "Small ferries once carried passengers between the villages.",
              "The lower course widens into marshes rich in birdlife.",
              "Farmers draw water from it to irrigate their fields in summer.",
              "The river has inspired songs and paintings by local artists.",
              "Water quality has improved in recent decades.",
              "Canoe clubs race on the calmer stretches each summer.",
              "A nature reserve protects the wetlands near the mouth.",
              "Barges carried coal and grain downstream in earlier centuries."]
    return river, facts, filler


def squad(rng: random.Random) -> dict:
    name, facts, filler = rng.choice([_town, _person, _river])(rng)
    target = rng.randrange(len(facts))
    sentence, question, answer = facts[target]
    sentences = list(dict.fromkeys(f for f, _, _ in facts))  # unique, in order
    long_context = rng.random() < 0.15
    if long_context:  # > 300 words: padding with related sentences, answer often late
        pad = filler + [g.format(name=name) for g in GENERIC_FILLER]
        pad = [p[0].upper() + p[1:] for p in pad]
        rng.shuffle(pad)
        if rng.random() < 0.6:
            sentences.remove(sentence)
            sentences = sentences + pad[:-2] + [sentence] + pad[-2:]
        else:
            half = len(pad) // 2
            sentences = sentences[:2] + pad[:half] + sentences[2:] + pad[half:]
    else:  # 3-8 sentences, the target kept
        others = [s for s in sentences if s != sentence]
        keep = set(rng.sample(others, rng.randint(2, len(others)))) | {sentence}
        sentences = [s for s in sentences if s in keep]
        if rng.random() < 0.5:
            sentences.insert(rng.randint(1, len(sentences)), rng.choice(filler))
    context, start = "", -1
    for s in sentences:
        if s == sentence:
            start = len(context) + (1 if context else 0) + s.index(answer)
        context = f"{context} {s}" if context else s
    assert start >= 0 and context[start:start + len(answer)] == answer, (context, answer)
    assert (len(context.split()) > 300) if long_context else (3 <= len(sentences) <= 8)
    return {"id": f"{rng.getrandbits(48):012x}", "question": question, "context": context,
            "answers": {"text": [answer], "answer_start": [start]}}


# ---------------------------------------------------------------- summarization

ACTORS = ["The city council of {city}", "{company}", "The regional health authority", "A group of local farmers",
          "The university of {city}", "The national rail operator", "A charity based in {city}", "Mayor {person}"]
ACTS = [  # (what the document says, what the summary says, consequence); every row carries the number
    ("opened a new bridge over the river", "opened a new bridge", "about {number} cars a day will avoid the centre"),
    ("announced plans to close three branches", "announced three branch closures",
     "{number} staff will be offered other roles"),
    ("launched a free bus service for pensioners", "launched free buses for pensioners",
     "about {number} people are expected to use it"),
    ("planted {number} trees along the main road", "planted {number} trees", "the street should be cooler in summer"),
    ("raised money to repair the old theatre", "raised money for theatre repairs",
     "the {number}-seat theatre will reopen next year"),
    ("hired {number} new nurses for the local hospital", "hired {number} nurses", "waiting times should fall"),
    ("cancelled the summer festival", "cancelled the summer festival", "{number} ticket holders will be refunded"),
    ("built a new playground in the park", "built a new playground", "it has room for {number} children"),
    ("raised ticket prices on commuter trains", "raised commuter fares", "about {number} daily commuters will pay more"),
    ("opened a food bank in a former shop", "opened a food bank", "it will serve about {number} families a week")]
WHENS = ["on Monday", "on Tuesday", "on Wednesday", "last week", "on Friday", "this morning", "at the weekend"]
NUMBERS = ["120", "250", "40", "600", "75", "1,200", "300", "90"]
SOURCES = ["officials", "organisers", "a spokesperson", "supporters", "a local councillor"]
QUOTES = ['"This is an important day for {city}," said one resident.',
          '"We listened to what people told us," a spokesperson said.',
          '"It has taken a long time, but we got there," said a volunteer.',
          '"Some people will be unhappy, and we understand that," an official admitted.']
FILLERS = ["The decision followed months of discussion.", "Residents had asked for the change for years.",
           "Not everyone welcomed the news.", "Local newspapers covered the story in detail.",
           "The weather was grey and cold as the announcement was made.",
           "A spokesperson declined to give further details about the cost.",
           "Similar schemes have been tried in other towns with mixed results.",
           "Opposition members said they would review the plan carefully.",
           "Shop owners nearby gave a cautious welcome.", "The project was paid for partly by a national grant.",
           "A public meeting on the subject is planned for next month."]


def summarization(rng: random.Random) -> dict:
    for _ in range(100):
        city, number, when = rng.choice(CITIES), rng.choice(NUMBERS), rng.choice(WHENS)
        who = rng.choice(ACTORS).format(city=city, company=rng.choice(COMPANIES), person=rng.choice(PEOPLE))
        act, short, consequence = (s.format(number=number) for s in rng.choice(ACTS))
        where = "" if city in who else f" in {city}"
        sents = [f"{who} {act}{where} {when}.", f"According to {rng.choice(SOURCES)}, {consequence}.",
                 rng.choice(QUOTES).format(city=city)]
        for f in rng.sample(FILLERS, rng.randint(1, 4)):
            sents.insert(rng.randint(1, len(sents)), f)
        document = " ".join(sents)
        summary = f"{who} {short}{where} {when}, and {consequence}."
        if 60 <= len(document.split()) <= 140 and 12 <= len(summary.split()) <= 25:
            return {"document": document, "summary": summary}
    raise AssertionError("no summarization row within limits")


# ---------------------------------------------------------------- creative writing

CHARACTERS = ["lighthouse keeper", "retired clockmaker", "young beekeeper", "night-shift nurse", "travelling baker",
              "shy librarian", "ferry captain", "village postman", "street musician", "mountain guide",
              "museum guard", "school caretaker", "sheep farmer", "train conductor", "market gardener"]
CHAR_NAMES = ["Ada", "Bram", "Celia", "Dov", "Elsie", "Finn", "Greta", "Hugo", "Iris", "Jem", "Kit", "Lorna"]
OBJECTS = ["a map", "an old key", "a letter with no address", "a broken compass", "a music box",
           "a jar of buttons", "a faded photograph", "a green glass bottle", "a locked diary", "a tiny brass bell"]
SETTINGS = [("on a foggy island", "the island"), ("in a snowed-in village", "the village"),
            ("at the edge of a salt marsh", "the marsh"), ("in a crowded city", "the city"),
            ("in a valley full of orchards", "the valley"), ("beside a frozen lake", "the lake"),
            ("in a seaside town", "the town"), ("in a mountain hamlet", "the hamlet")]
FINDS = [("finds", "found"), ("is given", "was given"), ("inherits", "inherited"), ("digs up", "dug up"),
         ("is sent", "was sent"), ("discovers", "discovered")]
OPENINGS = ["Few people ever noticed {name}, the {role} who lived {setting}.",
            "Every morning {name}, the {role}, followed the same quiet routine {setting}.",
            "It was raining the day {name}, a {role} {setting}, first noticed something strange.",
            "{name} had worked as a {role} {setting} for twenty years.",
            "The wind howled all night {setting}, and {name} the {role} could not sleep."]
MIDDLES = ["One day {name} {past} {object}.", "That week {name} {past} {object}, and nothing felt ordinary again.",
           "Then, quite by chance, {name} {past} {object}.", "On a grey Tuesday, {name} {past} {object}."]
TWISTS = ["It led, step by step, to a door {name} had walked past a thousand times.",
          "Inside was a message written, impossibly, in {name}'s own handwriting.",
          "It turned out to belong to a neighbour who had been searching for it for years.",
          "When {name} followed its clues, they pointed straight back home.",
          "It seemed ordinary, until it began to hum softly whenever the tide turned.",
          "A name was scratched on it, the name of {name}'s grandmother."]
MOMENTS = ["For a long while {name} just stared at it.", "{name} turned it over in trembling hands.",
           "Somewhere outside, a dog barked twice.", "The clock on the wall seemed to tick more slowly."]
ENDINGS = ["{name} smiled, put the kettle on, and decided some secrets are worth keeping.",
           "From then on, {name} never looked at {place} the same way again.",
           "By spring, everyone in {place} was telling the story, and {name} was no longer alone.",
           "{name} wrote everything down, just in case it happened again.",
           "That night, for the first time in years, {name} slept soundly."]


def creative(rng: random.Random) -> dict:
    for _ in range(100):
        role, obj, (setting, place) = rng.choice(CHARACTERS), rng.choice(OBJECTS), rng.choice(SETTINGS)
        (found, past), name = rng.choice(FINDS), rng.choice(CHAR_NAMES)
        article = "an" if role[0] in "aeiou" else "a"
        prompt = rng.choice(["Write a short story about {a} {role} who {found} {object}.",
                             "Write a short story set {setting} about {a} {role} who {found} {object}.",
                             "Tell a brief story: {a} {role} {found} {object}."]).format(
            a=article, role=role, found=found, object=obj, setting=setting)
        parts = [rng.choice(OPENINGS), rng.choice(MIDDLES)]
        if rng.random() < 0.6:
            parts.append(rng.choice(MOMENTS))
        parts.append(rng.choice(TWISTS))
        if len(parts) < 4 or rng.random() < 0.7:
            parts.append(rng.choice(ENDINGS))
        story = " ".join(p.format(name=name, role=role, setting=setting, place=place, past=past, object=obj)
                         for p in parts)
        story = story.replace(" a a", " an a").replace(" a o", " an o").replace(" a u", " an u")
        if 50 <= len(story.split()) <= 100:
            return {"prompt": prompt, "story": story}
    raise AssertionError("no creative row within limits")
