"""Write the offline sample datasets of the shipped tasks, deterministically.

Run `python tasks/data/generate.py`; it rewrites tasks/data/<task>/{train,eval}.jsonl.
Sentiment and spam are generated here; the other tasks' generators live in the sibling
modules gen_text.py (news, squad, summarization, creative), gen_qa.py (openqa, medical,
legal) and gen_dialogue.py (customer_service, chat).
Every text is composed here from templates and word lists written for tunebench
(no public dataset is copied). A fixed seed per task makes the files identical on
every run; a test checks that the committed files match this script.
"""
from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------- movie-review sentiment

FILMS = ["the sequel", "this thriller", "the new comedy", "this period drama", "the documentary",
         "this animated feature", "the remake", "this space opera", "the heist film", "this romance",
         "the horror picture", "this musical", "the war epic", "this indie debut", "the courtroom drama"]
ASPECTS = ["the acting", "the script", "the pacing", "the soundtrack", "the cinematography", "the ending",
           "the dialogue", "the lead performance", "the editing", "the plot", "the humour", "the visual effects"]
POSITIVE = ["superb", "moving", "gripping", "delightful", "brilliant", "charming", "sharp", "beautiful",
            "confident", "wonderful", "thrilling", "heartfelt", "clever", "memorable", "stunning"]
NEGATIVE = ["dull", "clumsy", "tedious", "lifeless", "messy", "forgettable", "predictable", "flat",
            "painful", "shallow", "sloppy", "boring", "muddled", "cheap", "exhausting"]
POSITIVE_VERDICTS = ["I would happily watch it again.", "Easily one of the best films this year.",
                     "Go and see it.", "It earns every minute of its running time.", "A real treat.",
                     "I left the cinema smiling.", "Highly recommended."]
NEGATIVE_VERDICTS = ["I want those two hours back.", "Skip it.", "One of the worst films this year.",
                     "I nearly walked out.", "Wait until it is free, or better, never.",
                     "A waste of a good cast.", "Not recommended."]
NEUTRAL = ["It runs just over two hours.", "I saw it on a weekday evening.", "The cast includes several newcomers.",
           "It is based on a novel.", "The trailer gives away a lot.", "I went in knowing very little."]


def _aspect_sentence(rng: random.Random, positive: bool) -> str:
    aspect = rng.choice(ASPECTS)
    if rng.random() < 0.2:  # negated opposite: "not dull" reads positive
        word = rng.choice(NEGATIVE if positive else POSITIVE)
        return f"{aspect.capitalize()} is never {word}." if positive else f"{aspect.capitalize()} is not exactly {word}."
    word = rng.choice(POSITIVE if positive else NEGATIVE)
    return rng.choice([f"{aspect.capitalize()} is {word}.", f"I found {aspect} {word}.",
                       f"{aspect.capitalize()} feels {word} throughout."])


def review(rng: random.Random, positive: bool) -> str:
    parts = [rng.choice([f"I watched {rng.choice(FILMS)} last night.", f"So, {rng.choice(FILMS)}.",
                         f"My thoughts on {rng.choice(FILMS)}:"])]
    if rng.random() < 0.3:  # a mixed review: one aspect goes the other way
        parts.append(_aspect_sentence(rng, not positive))
        parts.append(rng.choice(["Still,", "But overall,", "That said,"]))
    for _ in range(rng.randint(1, 3)):
        parts.append(_aspect_sentence(rng, positive))
    if rng.random() < 0.5:
        parts.append(rng.choice(NEUTRAL))
    parts.append(rng.choice(POSITIVE_VERDICTS if positive else NEGATIVE_VERDICTS))
    return " ".join(parts)


def sentiment(rng: random.Random) -> dict:
    label = rng.choice(["positive", "negative"])
    return {"review": review(rng, label == "positive"), "sentiment": label}


# ---------------------------------------------------------------- spam detection

NAMES = ["Sam", "Priya", "Tom", "Aisha", "Marco", "Lena", "Jonas", "Mei", "Omar", "Kate"]
PLACES = ["the station", "the office", "mum's", "the gym", "the cafe on King Street", "the library", "the clinic"]
TIMES = ["at 6", "tomorrow morning", "after lunch", "on Friday", "tonight", "around 7:30", "next week"]
HAM = ["Hi {name}, are we still meeting at {place} {time}?", "Running late, see you at {place} {time}.",
       "Can you pick up milk on the way home?", "{name}, thanks for dinner yesterday, it was lovely.",
       "The meeting moved to {time}, same room.", "Did you win the match {time}? Tell me everything.",
       "I left my keys at {place}, can you check?", "Happy birthday {name}! Cake at {place} {time}.",
       "Call me when you are free, nothing urgent.", "Your dentist appointment is {time} at {place}.",
       "Free for a coffee {time}? I am near {place}.", "Sorry I missed your call, driving. Back {time}.",
       "{name} said the report is due {time}, can you review my part?", "Got the tickets! Meet at {place}."]
SPAM = ["CONGRATULATIONS! You have WON a {prize}. Call {phone} now to claim before midnight.",
        "URGENT: your account has been suspended. Verify your details at {url} within 24 hours.",
        "You are pre-approved for a loan of {money}. No credit checks. Reply YES to {short}.",
        "Final notice: your parcel is held at customs. Pay the {money} fee at {url}.",
        "Earn {money} a week from home! Limited places, text WORK to {short}.",
        "Claim your free {prize} today! Just pay shipping at {url}. Offer ends soon.",
        "Your number was selected in our monthly draw. Prize: {money}. Call {phone}.",
        "Hot crypto tip: this coin will 10x this week. Join now at {url}.",
        "Dear customer, unusual sign-in detected. Reset your password at {url} immediately.",
        "Exclusive deal just for you: {prize} at 90% off. Reply STOP to opt out, {short}."]
PRIZES = ["iPhone", "holiday for two", "gift card", "laptop", "cash prize", "luxury watch", "cruise"]


def _fill(rng: random.Random, template: str) -> str:
    return template.format(
        name=rng.choice(NAMES), place=rng.choice(PLACES), time=rng.choice(TIMES), prize=rng.choice(PRIZES),
        phone=f"0{rng.randint(7000, 7999)} {rng.randint(100000, 999999)}",
        url=f"http://{rng.choice(['secure', 'claim', 'verify', 'win'])}-{rng.randint(10, 99)}.example",
        money=f"£{rng.choice([250, 500, 1000, 2500, 5000])}", short=str(rng.randint(60000, 89999)))


def spam(rng: random.Random) -> dict:
    is_spam = rng.random() < 0.4
    text = _fill(rng, rng.choice(SPAM if is_spam else HAM))
    if rng.random() < 0.3:
        text = text.lower() if rng.random() < 0.5 else text + " " + _fill(rng, rng.choice(HAM))
    return {"message": text, "label": "spam" if is_spam else "ham"}


# ---------------------------------------------------------------- the other tasks (sibling modules)


def _sibling(name: str):
    """Import tasks/data/<name>.py by path (this file is also loaded by path, outside any package)."""
    spec = importlib.util.spec_from_file_location(f"tunebench_data_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_text, gen_qa, gen_dialogue = _sibling("gen_text"), _sibling("gen_qa"), _sibling("gen_dialogue")

# ---------------------------------------------------------------- writing

SIZES = {"train": 480, "eval": 200}
# task: (generator, seed, sizes, unique) - with unique=FIELD no two rows of the task (train or eval) share that
# field, so eval never repeats a training item; sentiment and spam keep their original behaviour.
TASKS = {
    "sentiment": (sentiment, 101, SIZES, None),
    "spam": (spam, 202, SIZES, None),
    "news": (gen_text.news, 303, {"train": 480, "eval": 200}, "headline"),
    "squad": (gen_text.squad, 404, {"train": 400, "eval": 120}, "context"),
    "openqa": (gen_qa.openqa, 505, {"train": 300, "eval": 80}, "question"),
    "summarization": (gen_text.summarization, 606, {"train": 300, "eval": 60}, "document"),
    "creative": (gen_text.creative, 707, {"train": 300, "eval": 60}, "story"),
    "customer_service": (gen_dialogue.customer_service, 808, {"train": 300, "eval": 60}, "customer"),
    "chat": (gen_dialogue.chat, 909, {"train": 300, "eval": 60}, "messages"),
    "medical": (gen_qa.medical, 1010, {"train": 300, "eval": 60}, "question"),
    "legal": (gen_qa.legal, 1111, {"train": 300, "eval": 60}, "clause"),
}


def _rows(make, rng: random.Random, size: int, unique: str | None, seen: set) -> list[dict]:
    rows = []
    for _ in range(size * 200):
        if len(rows) == size:
            return rows
        row = make(rng)
        if unique is not None:
            key = json.dumps(row[unique], ensure_ascii=False)
            if key in seen:
                continue
            seen.add(key)
        rows.append(row)
    if len(rows) < size:
        raise RuntimeError(f"{make.__name__}: only {len(rows)} distinct rows of {size}")
    return rows


def write_all(root: Path = HERE) -> list[Path]:
    written = []
    for task, (make, seed, sizes, unique) in TASKS.items():
        rng, seen = random.Random(seed), set()
        for split, size in sizes.items():
            path = root / task / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            rows = _rows(make, rng, size, unique, seen)
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all():
        print(path.relative_to(HERE.parent.parent))
