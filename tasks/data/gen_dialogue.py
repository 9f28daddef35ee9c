"""Generators for the dialogue tasks: single-turn customer service and multi-turn chat.

Imported by generate.py; every text is composed from the templates and word lists below.
Each generator takes a random.Random and returns one row.
"""
from __future__ import annotations

import random

# ---------------------------------------------------------------- customer service (fictional shop "Maple & Finch")
# Policy: refunds within 30 days of delivery; standard delivery 3-5 working days; refunds reach the account in
# 3-5 working days; items damaged on arrival are replaced or refunded, customer's choice, no return needed.

ITEMS = ["table lamp", "kettle", "set of mugs", "duvet cover", "desk chair", "bath towel set", "wall clock",
         "frying pan", "bookshelf", "rug", "coffee grinder", "pair of curtains"]
DEFECTS = ["with a cracked base", "scratched", "with a missing part", "broken", "with a dent in the side",
           "not working at all"]
GREETINGS = ["Hi, ", "Hello, ", "", "Good morning, ", "Hey, "]
SIGNOFFS = ["", " Thanks.", " Thank you!", " Please help.", " This is really frustrating."]


def _order(rng: random.Random) -> str:
    return f"MF-{rng.randint(10000, 99999)}"


def customer_service(rng: random.Random) -> dict:
    order, item, greet = _order(rng), rng.choice(ITEMS), rng.choice(GREETINGS)
    kind = rng.choice(["status", "refund", "delay", "password", "billing", "defect", "cancel"])
    if kind == "status":
        days = rng.randint(1, 4)
        msg = rng.choice([f"where is my order {order}? I placed it {days} days ago.",
                          f"can you tell me the status of order {order}?",
                          f"I ordered a {item} ({order}) and haven't heard anything since."])
        reply = (f"Thanks for getting in touch. Order {order} has been dispatched and should arrive within 3-5 working "
                 f"days of dispatch; the tracking link is in your dispatch email.")
    elif kind == "refund":
        days = rng.choice([3, 7, 12, 20, 26, 29, 35, 41, 60, 90])
        msg = rng.choice([f"I'd like a refund for the {item} from order {order}. It arrived {days} days ago.",
                          f"I want to return the {item} I received {days} days ago, order {order}.",
                          f"can I get my money back for order {order}? I've had the {item} for {days} days."])
        if days <= 30:
            reply = (f"Of course. Order {order} is within our 30-day refund window, so please return the {item} using "
                     f"the free returns label in your account. We will refund you within 3-5 working days of receiving it.")
        else:
            reply = (f"I'm sorry, but order {order} was delivered {days} days ago, which is outside our 30-day refund "
                     f"window. If the {item} is faulty, we can still offer a repair or store credit.")
    elif kind == "delay":
        when = rng.choice(["yesterday", "on Monday", "last week", "three days ago"])
        msg = rng.choice([f"my order {order} was supposed to arrive {when} and it still hasn't come.",
                          f"order {order} is late. It was due {when}. Where is it?",
                          f"I'm still waiting for my {item}, order {order}. It should have been here {when}."])
        reply = (f"I'm sorry that order {order} is late. Our courier has reported a delay in your area, and if it has "
                 f"not arrived within 3 working days we will send a replacement or give you a full refund.")
    elif kind == "password":
        msg = rng.choice(["I forgot my password and can't log in.", "how do I reset my password?",
                          "my account says the password is wrong but I'm sure it's right.",
                          "I'm locked out of my account, can you send me my password?"])
        reply = ("No problem. Click 'Forgot password' on the sign-in page and we will email a reset link to the address "
                 "on your account; the link is valid for 24 hours. For your security, we never send or ask for passwords.")
    elif kind == "billing":
        amount = f"£{rng.randint(9, 149)}.{rng.choice(['00', '49', '95', '99'])}"
        msg = rng.choice([f"I've been charged twice for order {order}, {amount} each time.",
                          f"my card was charged {amount} for order {order} but I cancelled it.",
                          f"there's an extra charge of {amount} on my statement for order {order}."])
        reply = (f"I'm sorry about that. I can see the extra charge of {amount} on order {order} and have refunded it; "
                 f"it should appear on your statement within 3-5 working days.")
    elif kind == "defect":
        defect = rng.choice(DEFECTS)
        msg = rng.choice([f"the {item} from order {order} arrived {defect}.",
                          f"I just unpacked my {item} (order {order}) and it's {defect}.",
                          f"order {order}: the {item} came {defect}. What can you do?"])
        msg = msg.replace("it's with", "it came with")
        reply = (f"I'm very sorry the {item} arrived {defect}. We can send a free replacement or give you a full refund "
                 f"for order {order}, whichever you prefer, and you don't need to return the damaged item.")
    else:
        msg = rng.choice([f"can I cancel order {order}? I ordered the wrong {item}.",
                          f"please cancel my order {order}, I changed my mind.",
                          f"I need to cancel order {order} before it ships."])
        reply = (f"Orders can be cancelled until they are dispatched, and order {order} has not left our warehouse yet, "
                 f"so I have cancelled it. You will receive a full refund within 3-5 working days.")
    customer = greet + msg if greet else msg[0].upper() + msg[1:]
    return {"customer": customer + rng.choice(SIGNOFFS), "reply": reply}


# ---------------------------------------------------------------- multi-turn chat

DIETS = {"vegetarian": ("a mushroom and spinach risotto", "a baked apple crumble"),
         "vegan": ("a chickpea and sweet potato curry", "a mango sorbet"),
         "gluten-free": ("grilled salmon with roast potatoes", "a flourless chocolate cake"),
         "allergic to nuts": ("a chicken and vegetable stir-fry without any nut oils", "a lemon posset"),
         "dairy-free": ("a tomato and lentil soup with crusty bread", "poached pears in red wine")}
CITIES = {"Lisbon": "the old tram routes", "Kyoto": "the temples in the early morning",
          "Edinburgh": "the castle and the Royal Mile", "Barcelona": "the markets and the beach",
          "Vienna": "the coffee houses", "Rome": "the ancient ruins", "Copenhagen": "the harbour by bike"}
MONTHS = ["March", "May", "July", "September", "November", "December"]
SUBJECTS = {"chemistry": ["balancing equations", "the periodic table", "moles and molar mass"],
            "history": ["dates and timelines", "essay structure", "source analysis"],
            "maths": ["quadratic equations", "probability", "fractions and percentages"],
            "biology": ["cell structure", "genetics", "photosynthesis"],
            "French": ["verb conjugations", "listening exercises", "vocabulary"]}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
HOBBIES = {"watercolour painting": "a small set of paints, two brushes and good paper",
           "running": "a pair of comfortable running shoes", "guitar": "a second-hand acoustic guitar and a tuner",
           "gardening": "a trowel, gloves and some easy seeds", "knitting": "medium needles and chunky wool",
           "photography": "the camera on your phone", "baking bread": "flour, yeast and a large bowl"}
TIMES = ["two hours", "three hours", "about an hour", "five hours", "half an hour a day"]


def _recipe(rng):
    diet, n = rng.choice(sorted(DIETS)), rng.randint(3, 8)
    main, dessert = DIETS[diet]
    opener = (f"I'm cooking dinner for {n} people tonight and one of them is {diet}. Any ideas?",
              f"How about {main}? It suits everyone at the table and scales easily for {n} people.")
    middles = [("Sounds good. How long will it take?", "Plan on about 45 minutes, including the preparation."),
               ("I don't have much time after work though.", "Then prepare the vegetables the night before; that saves about 15 minutes."),
               ("Can I make it the day before?", "Yes, most of it keeps well in the fridge overnight; just reheat it gently."),
               ("What should I drink with it?", "Sparkling water with lemon is an easy choice, or a light wine for those who drink.")]
    finals = [("And what about dessert?",
               f"Try {dessert}: it is safe for your guest who is {diet}, and one batch is enough for {n} people."),
              ("Should I make a separate dish for my friend?",
               f"No need: {main} already works for your friend who is {diet}, so all {n} of you can share the same meal."),
              ("Any last tips?",
               f"Check every label for your guest who is {diet}, and make a little extra so that {n} people have seconds.")]
    return opener, middles, finals


def _travel(rng):
    city, days, month = rng.choice(sorted(CITIES)), rng.randint(3, 7), rng.choice(MONTHS)
    budget = f"£{rng.choice([400, 600, 800, 1000, 1500])}"
    opener = (f"I'm planning a {days}-day trip to {city} in {month} with a budget of {budget}. Where do I start?",
              f"Start with flights and a place to stay, since they take most of a {budget} budget; then plan one "
              f"main sight per day.")
    middles = [("What should I pack?", "Comfortable walking shoes, a light rain jacket and layers are always useful."),
               ("Is it better to book things in advance?", "For popular museums, yes; book timed tickets online a few weeks ahead."),
               ("How do I get around once I'm there?", "Public transport is usually cheapest; a multi-day pass often pays off."),
               ("Should I get travel insurance?", "Yes, it is worth having, especially if you are travelling with valuables.")]
    finals = [("What's one thing I shouldn't miss?",
               f"In {city}, don't miss {CITIES[city]}; with {days} days you can give it a whole morning."),
              ("Any tips on where to stay?",
               f"With {budget} for {days} days, look for a guesthouse near the centre of {city} so you save on transport."),
              ("What will the weather be like?",
               f"It depends on the year, but check the forecast for {city} a week before; {month} can vary, so pack layers.")]
    return opener, middles, finals


def _study(rng):
    subject = rng.choice(sorted(SUBJECTS))
    topic, day = rng.choice(SUBJECTS[subject]), rng.choice(DAYS)
    opener = (f"I have a {subject} exam on {day} and I really struggle with {topic}.",
              f"Let's make a plan. Start each session with {topic} while you are fresh, then review other parts.")
    middles = [("How long should each study session be?", "Around 25 to 45 minutes with a short break works well for most people."),
               ("I keep getting distracted by my phone.", "Put it in another room while you study and check it only during breaks."),
               ("Should I make flashcards?", "Yes, flashcards are good for quick recall; test yourself instead of rereading."),
               ("Is it worth doing past papers?", "Definitely, past papers show you the question style and timing.")]
    finals = [("What should I do the night before?",
               f"Do a light review of {topic}, pack what you need for {day}, and get a full night's sleep."),
              ("How do I know if I'm ready?",
               f"If you can solve a few {topic} questions without notes, you're in good shape for {day}."),
              ("Can you summarise the plan?",
               f"Focus on {topic} first each day, practise with past {subject} questions, and rest well before {day}.")]
    return opener, middles, finals


def _hobby(rng):
    hobby, time = rng.choice(sorted(HOBBIES)), rng.choice(TIMES)
    opener = (f"I want to start {hobby}. I'm a complete beginner and I have {time} a week.",
              f"Great choice! To begin with {hobby} you only need {HOBBIES[hobby]}.")
    middles = [("Should I take a class?", "A beginner class helps, but free online lessons are a fine start too."),
               ("How do I stay motivated?", "Set small goals and keep a record of your progress so you can see it grow."),
               ("Is it expensive?", "It doesn't have to be; start with basic equipment and upgrade later if you enjoy it."),
               ("What if I'm not very good at first?", "Everyone starts there; steady practice matters more than talent.")]
    finals = [("How should I plan my week?",
               f"With {time} a week, split it into two or three short sessions of {hobby} rather than one long one."),
              ("What should my first project be?",
               f"Keep it small: something you can finish within {time} of {hobby}, so you get an early success."),
              ("When will I see progress?",
               f"If you keep up {time} of {hobby} every week, most beginners notice real progress within a month or two.")]
    return opener, middles, finals


def chat(rng: random.Random) -> dict:
    opener, middles, finals = rng.choice([_recipe, _travel, _study, _hobby])(rng)
    user_turns = rng.randint(2, 4)
    pairs = [opener] + rng.sample(middles, user_turns - 2) + [rng.choice(finals)]
    messages = []
    for user, assistant in pairs:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"messages": messages}
