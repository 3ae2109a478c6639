"""The ``embedded`` source: small, seeded, offline data with a learnable signal.

Each generator builds rows of one task from templates over real English words (so
bert-base-uncased's WordPiece vocabulary covers them) and returns them in the
task's hub schema, through the same code path as real data. The signal is simple
enough for a tiny model to beat chance in a few hundred steps:

* sentiment   -- lexicon adjectives, intensifiers, negation that flips polarity,
                 and "although X, Y" sentences where the main clause decides;
* acceptability -- grammatical templates vs. word-swap / agreement / dropped-word errors;
* paraphrase  -- synonym swaps vs. a changed content word or an unrelated sentence;
* similarity  -- score falls with the number of content slots changed;
* NLI         -- dropped modifiers / hypernyms (entailment), added facts (neutral),
                 negation / "nobody" / antonyms (contradiction);
* QA          -- biography facts; answers are real substrings with exact offsets,
                 squad_v2 adds questions about facts the context does not state;
* captions    -- tiny PNGs of a coloured shape with English / Chinese captions;
* bitext      -- compositional English-Chinese sentences.

Everything is drawn from ``random.Random`` seeded by (seed, task, split), so the
same seed gives identical data and splits never share a stream.
"""
from __future__ import annotations

import hashlib
import io
import random
from typing import Any, Callable

from .registry import TaskSpec

Rows = list[dict[str, Any]]

# --------------------------------------------------------------------------- vocabulary
PEOPLE = ["man", "woman", "boy", "girl", "child", "teacher", "doctor", "farmer", "student",
          "musician", "cook", "player", "driver", "artist", "dancer", "nurse"]
PLURAL = {"man": "men", "woman": "women", "child": "children"}
PERSON_ADJ = {"young": "old", "old": "young", "tall": "short", "short": "tall",
              "happy": "sad", "sad": "happy", "tired": "rested", "busy": "idle"}
# (present participle, past tense, base form, objects)
ACTIONS = [
    ("playing", "played", "play", ["guitar", "piano", "violin", "game"]),
    ("reading", "read", "read", ["book", "newspaper", "letter", "magazine"]),
    ("riding", "rode", "ride", ["bicycle", "horse", "bus", "motorcycle"]),
    ("eating", "ate", "eat", ["apple", "sandwich", "banana", "cake"]),
    ("cooking", "cooked", "cook", ["meal", "soup", "dinner", "breakfast"]),
    ("painting", "painted", "paint", ["picture", "wall", "fence", "portrait"]),
    ("throwing", "threw", "throw", ["ball", "stone", "stick", "frisbee"]),
    ("washing", "washed", "wash", ["car", "dish", "window", "shirt"]),
    ("writing", "wrote", "write", ["letter", "song", "story", "report"]),
    ("cutting", "cut", "cut", ["onion", "paper", "bread", "rope"]),
]
PLACES = ["park", "kitchen", "garden", "street", "beach", "library", "school", "market",
          "field", "river", "station", "office", "forest", "square", "stadium", "harbor"]
SYNONYMS = {"man": "guy", "woman": "lady", "child": "kid", "boy": "lad", "street": "road",
            "happy": "glad", "big": "large", "small": "little", "quickly": "fast",
            "picture": "painting", "car": "automobile", "begin": "start", "buy": "purchase",
            "meal": "dish", "sad": "unhappy", "tired": "exhausted", "said": "stated",
            "store": "shop", "children": "kids", "movie": "film", "doctor": "physician"}
POS_ADJ = ["good", "great", "wonderful", "excellent", "brilliant", "charming", "moving",
           "funny", "beautiful", "delightful", "clever", "enjoyable", "superb", "touching",
           "memorable", "fresh", "smart", "warm", "powerful", "lovely"]
NEG_ADJ = ["bad", "boring", "dull", "awful", "terrible", "weak", "tedious", "clumsy",
           "messy", "predictable", "forgettable", "silly", "painful", "bland", "lifeless",
           "stupid", "ugly", "flat", "pointless", "annoying"]
FILM_PARTS = ["the film", "this movie", "the plot", "the acting", "the script", "the story",
              "the ending", "the cast", "the dialogue", "the soundtrack", "the main character",
              "the direction", "the humor", "the final scene", "the whole thing"]
INTENS = ["", "very ", "really ", "quite ", "truly ", "rather ", "remarkably ", "so "]
FIRST = ["anna", "david", "maria", "john", "sofia", "peter", "laura", "thomas", "elena",
         "james", "clara", "henry", "alice", "robert", "julia", "samuel", "emma", "victor"]
LAST = ["miller", "garcia", "weber", "rossi", "novak", "larsen", "dubois", "silva", "kowalski",
        "brown", "schmidt", "moreau", "jensen", "costa", "fischer", "walker"]
CITIES = ["paris", "london", "berlin", "madrid", "rome", "vienna", "dublin", "lisbon", "prague",
          "oslo", "boston", "chicago", "denver", "sydney", "toronto", "geneva", "munich"]
FIELDS = ["chemistry", "history", "music", "law", "medicine", "physics", "economics", "art",
          "biology", "philosophy", "mathematics", "architecture"]
JOBS = ["engineer", "painter", "lawyer", "architect", "writer", "journalist", "banker", "pilot"]
INSTRUMENTS = ["piano", "violin", "cello", "flute", "trumpet", "guitar", "drums"]
NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve"]
TOPICS = ["python", "french", "guitar", "chess", "cooking", "swimming", "photography",
          "programming", "spanish", "drawing", "statistics", "writing", "running", "math"]
GOALS = [("learn {t} quickly", "learn {t} fast"), ("get better at {t}", "improve at {t}"),
         ("start learning {t}", "begin learning {t}"), ("teach {t} to kids", "teach {t} to children")]
Q_FRAMES = [("how can i {g}?", "what is the best way to {g}?"),
            ("what should i do to {g}?", "how do i {g}?"),
            ("is it possible to {g}?", "can anyone {g}?")]


def stream(seed: int, *parts: Any) -> random.Random:
    """An independent, reproducible RNG for (seed, task, split, ...)."""
    key = "/".join(str(p) for p in (seed, *parts)).encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


def uid(*parts: Any) -> str:
    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()[:24]


def a_an(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def synonymise(text: str, rng: random.Random, p: float = 0.7) -> str:
    return " ".join(SYNONYMS[w] if w in SYNONYMS and rng.random() < p else w for w in text.split())


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


# --------------------------------------------------------------------------- scenes
def scene(rng: random.Random, places: list[str] = PLACES) -> dict[str, str]:
    """The content slots shared by the pair tasks: who does what to what, where."""
    ving, past, base, objs = rng.choice(ACTIONS)
    return {"adj": rng.choice(list(PERSON_ADJ)), "who": rng.choice(PEOPLE), "ving": ving,
            "past": past, "base": base, "obj": rng.choice(objs), "place": rng.choice(places)}


def say(s: dict[str, str], form: str = "prog") -> str:
    if form == "past":
        return f"the {s['adj']} {s['who']} {s['past']} the {s['obj']} in the {s['place']}."
    return f"{a_an(s['adj'])} {s['who']} is {s['ving']} {a_an(s['obj'])} in the {s['place']}."


def change(s: dict[str, str], rng: random.Random, k: int) -> dict[str, str]:
    """A copy of scene `s` with `k` content slots replaced by different values."""
    t = dict(s)
    for slot in rng.sample(["who", "action", "obj", "place"], k):
        if slot == "who":
            t["who"] = rng.choice([p for p in PEOPLE if p != s["who"]])
        elif slot == "place":
            t["place"] = rng.choice([p for p in PLACES if p != s["place"]])
        elif slot == "obj":
            objs = next(a[3] for a in ACTIONS if a[0] == t["ving"])
            t["obj"] = rng.choice([o for o in objs if o != s["obj"]])
        else:
            ving, past, base, objs = rng.choice([a for a in ACTIONS if a[0] != s["ving"]])
            t.update(ving=ving, past=past, base=base, obj=rng.choice(objs))
    return t


# --------------------------------------------------------------------------- single sentence
def sentiment_sentence(rng: random.Random) -> tuple[str, int]:
    """(text, 1 if positive else 0): polarity word, maybe negated, maybe a contrast clause."""
    pos = rng.random() < 0.5
    negate = rng.random() < 0.3

    def clause(positive: bool, allow_not: bool) -> str:
        flip = allow_not and negate
        adj = rng.choice(POS_ADJ if positive != flip else NEG_ADJ)
        part = rng.choice(FILM_PARTS)
        if flip:
            verb = rng.choice(["is not", "was not", "is never", "never feels", "does not seem"])
            return f"{part} {verb} {adj}"
        return f"{part} {rng.choice(['is', 'was', 'feels', 'seems'])} {rng.choice(INTENS)}{adj}"

    if rng.random() < 0.25:
        text = f"although {clause(not pos, False)}, {clause(pos, True)}"
    else:
        text = clause(pos, True)
        if rng.random() < 0.4:
            text += rng.choice([" from start to finish", " overall", " , and it shows",
                                f" , just like {rng.choice(FILM_PARTS)}"])
    return text + rng.choice([" .", " !", " ."]), int(pos)


def acceptability_sentence(rng: random.Random) -> tuple[str, int]:
    s = scene(rng)
    good = say(s, rng.choice(["prog", "past"])).rstrip(".")
    if rng.random() < 0.5:
        return cap(good) + ".", 1
    words = good.split()
    kind = rng.randrange(4)
    if kind == 0:  # swap two adjacent words
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    elif kind == 1:  # agreement error
        plural = PLURAL.get(s["who"], s["who"] + "s")
        words = f"the {s['adj']} {plural} is {s['ving']} the {s['obj']} in the {s['place']}".split()
    elif kind == 2:  # drop the verb
        words = [w for w in words if w not in (s["ving"], s["past"])]
    else:  # wrong verb form
        words = f"the {s['who']} {s['base']}ed the {s['obj']} {s['place']} in".split()
    return cap(" ".join(words)) + ".", 0


# --------------------------------------------------------------------------- pairs
def nli_pair(rng: random.Random, label: str, places: list[str] = PLACES) -> tuple[str, str]:
    s = scene(rng, places)
    premise = say(s)
    if label == "entailment":
        hyp = rng.choice([f"{a_an(s['who'])} is {s['ving']} {a_an(s['obj'])}.",
                          f"someone is {s['ving']} something in the {s['place']}.",
                          f"there is {a_an(s['adj'])} {s['who']} in the {s['place']}.",
                          synonymise(f"a person is {s['ving']} {a_an(s['obj'])} in the {s['place']}.", rng)])
    elif label == "contradiction":
        hyp = rng.choice([f"{a_an(s['who'])} is not {s['ving']} {a_an(s['obj'])}.",
                          f"nobody is {s['ving']} {a_an(s['obj'])} in the {s['place']}.",
                          f"{a_an(PERSON_ADJ[s['adj']])} {s['who']} is {s['ving']} {a_an(s['obj'])}.",
                          f"the {s['who']} is sleeping at home and is not in the {s['place']}."])
    else:
        hyp = rng.choice([f"{a_an(s['who'])} is {s['ving']} {a_an(s['obj'])} for a friend.",
                          f"the {s['who']} is {s['ving']} because of a birthday.",
                          f"{a_an(s['who'])} is {s['ving']} {a_an(s['obj'])} on a sunny afternoon.",
                          f"the {s['who']} in the {s['place']} is a professional."])
    return cap(premise), cap(hyp)


def paraphrase_pair(rng: random.Random, positive: bool) -> tuple[str, str]:
    s = scene(rng)
    first = say(s, rng.choice(["prog", "past"]))
    if positive:
        second = synonymise(first, rng)
        if rng.random() < 0.5:
            second = f"in the {s['place']}, " + second.replace(f" in the {s['place']}", "")
    elif rng.random() < 0.5:
        second = say(change(s, rng, rng.choice([1, 2])), rng.choice(["prog", "past"]))
    else:
        second = say(scene(rng), rng.choice(["prog", "past"]))
    return cap(first), cap(second)


def question_pair(rng: random.Random, positive: bool) -> tuple[str, str]:
    topic = rng.choice(TOPICS)
    goal = rng.choice(GOALS)
    frame = rng.choice(Q_FRAMES)
    q1 = frame[0].format(g=goal[0].format(t=topic))
    if positive:
        q2 = frame[1].format(g=goal[1].format(t=topic))
    elif rng.random() < 0.5:
        q2 = frame[1].format(g=goal[1].format(t=rng.choice([t for t in TOPICS if t != topic])))
    else:
        q2 = rng.choice(Q_FRAMES)[1].format(g=rng.choice([g for g in GOALS if g != goal])[1].format(t=topic))
    return cap(q1), cap(q2)


def similarity_pair(rng: random.Random) -> tuple[str, str, float]:
    s = scene(rng)
    k = rng.choice([0, 0, 1, 2, 3, 4])
    t = change(s, rng, k)
    a = say(s)
    b = synonymise(say(t), rng, 0.5)
    score = max(0.0, min(5.0, 5.0 - 1.25 * k + rng.uniform(-0.3, 0.3)))
    return cap(a), cap(b), round(score, 3)


def qnli_pair(rng: random.Random, positive: bool) -> tuple[str, str]:
    s = scene(rng)
    q = rng.choice([(f"where was the {s['who']} {s['ving']} {a_an(s['obj'])}?", "place"),
                    (f"what was the {s['who']} {s['ving']} in the {s['place']}?", "obj")])[0]
    if positive:
        return cap(q), cap(say(s, "past"))
    other = change(s, rng, 2) if rng.random() < 0.5 else scene(rng)
    if other["who"] == s["who"]:
        other["who"] = rng.choice([p for p in PEOPLE if p != s["who"]])
    return cap(q), cap(say(other, "past"))


def wnli_pair(rng: random.Random, positive: bool) -> tuple[str, str]:
    """Winograd-style: which noun does "it" / "he" refer to?"""
    if rng.random() < 0.5:
        big, small = rng.sample(["suitcase", "box", "trophy", "bag", "table", "drawer", "car", "door"], 2)
        adj = rng.choice(["big", "small"])
        premise = f"the {big} did not fit into the {small} because it was too {adj}."
        ref = big if adj == "big" else small
        other = small if ref == big else big
    else:
        a, b = rng.sample(PEOPLE, 2)
        why = rng.choice([("thanked", "had helped", 1), ("thanked", "was grateful", 0),
                          ("called", "wanted to talk", 0), ("called", "had asked for a call", 1)])
        premise = f"the {a} {why[0]} the {b} because he {why[1]}."
        ref, other = (b, a) if why[2] else (a, b)
        adj = why[1]
        hyp = f"the {ref if positive else other} {adj}."
        return cap(premise), cap(hyp)
    hyp = f"the {ref if positive else other} was too {adj}."
    return cap(premise), cap(hyp)


# --------------------------------------------------------------------------- QA
def biography(rng: random.Random) -> tuple[str, str, list[dict[str, Any]]]:
    """(title, context, facts): facts carry the questions and their exact answer spans."""
    first, last = cap(rng.choice(FIRST)), cap(rng.choice(LAST))
    name = f"{first} {last}"
    he = rng.choice(["He", "She"])
    city, city2, city3 = rng.sample(CITIES, 3)
    year = rng.randrange(1850, 1960)
    field_, job, inst, n = rng.choice(FIELDS), rng.choice(JOBS), rng.choice(INSTRUMENTS), rng.choice(NUMBERS)
    cap_city = cap(city)
    # one answer per fact and no answer stated twice, so a question about a fact that
    # is left out of the context really is unanswerable (squad_v2)
    templates = [
        (f"{name} was born in {{a}}.", cap_city,
         [f"Where was {name} born?", f"In which city was {first} born?"]),
        (f"{he} was born in the year {{a}}.", str(year),
         [f"In what year was {name} born?", f"When was {first} {last} born?"]),
        (f"{he} studied {{a}} at the University of {cap(city2)}.", field_,
         [f"What did {name} study?", f"Which subject did {first} study at university?"]),
        (f"After graduating, {he.lower()} worked as {a_an(job).split()[0]} {{a}} for {n} years.", job,
         [f"What did {name} work as?", f"What was {first}'s job?"]),
        (f"In {{a}}, {first} also played in a local orchestra.", cap(city3),
         [f"Where did {name} play in an orchestra?", f"In which city did {first} play in an orchestra?"]),
        (f"{he} learned to play the {{a}} as a child.", inst,
         [f"What instrument did {name} play?", f"Which instrument did {first} learn to play?"]),
    ]
    rng.shuffle(templates)
    used = templates[:rng.randrange(3, 6)]
    unused = templates[len(used):]
    context, facts = "", []
    for tmpl, ans, qs in used:
        prefix, suffix = tmpl.split("{a}")
        if context:
            context += " "
        facts.append({"question": rng.choice(qs), "text": ans, "start": len(context) + len(prefix)})
        context += prefix + ans + suffix
    no_answer = [{"question": rng.choice(qs), "text": None, "start": None} for _, _, qs in unused]
    return f"{first}_{last}", context, facts + no_answer


def squad_rows(rng: random.Random, n: int, split: str, seed: int, task: str,
               impossible: float) -> Rows:
    rows: Rows = []
    while len(rows) < n:
        title, context, facts = biography(rng)
        answerable = [f for f in facts if f["text"] is not None]
        unanswerable = [f for f in facts if f["text"] is None]
        for _ in range(rng.randrange(1, 4)):
            if len(rows) >= n:
                break
            if impossible and unanswerable and rng.random() < impossible:
                f = rng.choice(unanswerable)
                answers = {"text": [], "answer_start": []}
            else:
                f = rng.choice(answerable)
                k = 1 if split == "train" else rng.randrange(1, 4)
                answers = {"text": [f["text"]] * k, "answer_start": [f["start"]] * k}
            rows.append({"id": uid(seed, task, split, len(rows)), "title": title,
                         "context": context, "question": f["question"], "answers": answers})
    return rows


# --------------------------------------------------------------------------- corpus
def corpus_rows(rng: random.Random, n: int) -> Rows:
    """WikiText-like lines: ` = Title = ` headings, blank lines, paragraphs."""
    rows: Rows = []
    while len(rows) < n:
        title, context, _ = biography(rng)
        rows += [{"text": ""}, {"text": f" = {title.replace('_', ' ')} = "}, {"text": ""},
                 {"text": " " + context}]
        for _ in range(rng.randrange(2, 5)):
            sents = []
            for _ in range(rng.randrange(15, 31)):
                kind = rng.randrange(4)
                if kind == 0:
                    sents.append(cap(sentiment_sentence(rng)[0]))
                elif kind == 1:
                    sents.append(cap(say(scene(rng), "past")))
                elif kind == 2:
                    sents.append(nli_pair(rng, rng.choice(["entailment", "neutral"]))[1])
                else:
                    sents.append(cap(say(scene(rng))))
            rows += [{"text": ""}, {"text": " " + " ".join(sents)}]
    return rows[:n]


# --------------------------------------------------------------------------- bitext / captions
ZH_SUBJ = [("I", "我", "1"), ("you", "你", "2"), ("he", "他", "3"), ("she", "她", "3"),
           ("we", "我们", "p"), ("they", "他们", "p"), ("my mother", "我妈妈", "3"),
           ("the teacher", "老师", "3"), ("my friends", "我的朋友们", "p")]
ZH_VERB = [("like", "喜欢", [("cats", "猫"), ("dogs", "狗"), ("music", "音乐"), ("tea", "茶")]),
           ("eat", "吃", [("apples", "苹果"), ("rice", "米饭"), ("bread", "面包"), ("noodles", "面条")]),
           ("buy", "买", [("books", "书"), ("flowers", "花"), ("bread", "面包"), ("apples", "苹果")]),
           ("read", "读", [("books", "书"), ("newspapers", "报纸"), ("letters", "信")]),
           ("drink", "喝", [("tea", "茶"), ("water", "水"), ("coffee", "咖啡"), ("milk", "牛奶")])]
ZH_TIME = [("", ""), ("today", "今天"), ("every day", "每天"), ("in the morning", "早上")]


def bitext_pair(rng: random.Random) -> tuple[str, str]:
    (en_s, zh_s, person), (verb, zh_v, objs) = rng.choice(ZH_SUBJ), rng.choice(ZH_VERB)
    (obj, zh_o), (when, zh_t) = rng.choice(objs), rng.choice(ZH_TIME)
    neg, ask = rng.random() < 0.3, rng.random() < 0.2
    third = person == "3"
    if ask:
        do = "does" if third else "do"
        en = f"{do.capitalize()} {en_s} {'not ' if neg else ''}{verb} {obj}{' ' + when if when else ''}?"
        zh = f"{zh_s}{zh_t}{'不' if neg else ''}{zh_v}{zh_o}吗？"
        return en, zh
    if neg:
        vp = f"{'does' if third else 'do'} not {verb}"
    else:
        vp = verb + ("s" if third else "")
    en = f"{cap(en_s)} {vp} {obj}{' ' + when if when else ''}."
    return en, f"{zh_s}{zh_t}{'不' if neg else ''}{zh_v}{zh_o}。"


COLORS = [("red", "红色", (220, 40, 40)), ("blue", "蓝色", (40, 70, 220)),
          ("green", "绿色", (40, 170, 60)), ("yellow", "黄色", (235, 210, 40)),
          ("white", "白色", (245, 245, 245)), ("black", "黑色", (20, 20, 20))]
SHAPES = [("circle", "圆形"), ("square", "正方形"), ("triangle", "三角形")]
SPOTS = [("left", "左边", (2, 10)), ("right", "右边", (18, 10)), ("top", "上面", (10, 2)),
         ("bottom", "下面", (10, 18)), ("middle", "中间", (10, 10))]
CAPTIONS = [  # (English, Chinese) templates: c colour, s shape, b background, p position
    ("a {c} {s} on a {b} background .", "{b}背景上有一个{c}的{s}。"),
    ("a {c} {s} in the {p} of the picture .", "图片的{p}有一个{c}{s}。"),
    ("there is a {c} {s} on the {p} .", "{p}有一个{c}的{s}。"),
    ("a picture of a {c} {s} .", "一张{c}{s}的图片。"),
    ("a small {c} {s} against a {b} background .", "一个{c}的小{s}，背景是{b}。"),
]


def shape_image(rng: random.Random) -> tuple[bytes, dict[str, str], dict[str, str]]:
    """A 32x32 PNG of one coloured shape; returns (png, English slots, Chinese slots)."""
    from PIL import Image, ImageDraw

    fg, bg = rng.sample(COLORS, 2)
    shape, spot = rng.choice(SHAPES), rng.choice(SPOTS)
    img = Image.new("RGB", (32, 32), bg[2])
    d = ImageDraw.Draw(img)
    x, y = spot[2]
    box = (x, y, x + 12, y + 12)
    if shape[0] == "circle":
        d.ellipse(box, fill=fg[2])
    elif shape[0] == "square":
        d.rectangle(box, fill=fg[2])
    else:
        d.polygon([(x + 6, y), (x, y + 12), (x + 12, y + 12)], fill=fg[2])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue(), dict(c=fg[0], s=shape[0], b=bg[0], p=spot[0]), \
        dict(c=fg[1], s=shape[1], b=bg[1], p=spot[1])


def caption_rows(rng: random.Random, n: int, split: str, seed: int, lang: str) -> Rows:
    rows = []
    for i in range(n):
        png, en, zh = shape_image(rng)
        image_id = f"shape_{uid(seed, lang, split, i)[:12]}"
        caps = [(e.format(**en) if lang == "en" else z.format(**zh)) for e, z in CAPTIONS]
        rows.append({"image_id": image_id, "image": {"bytes": png, "path": image_id + ".png"},
                     "captions": caps})
    return rows


def caption_bitext_rows(rng: random.Random, n: int, split: str, seed: int) -> Rows:
    rows: Rows = []
    while len(rows) < n:
        _, en, zh = shape_image(rng)
        image_id = f"shape_{uid(seed, 'bitext', split, len(rows))[:12]}"
        for k, (e, z) in enumerate(CAPTIONS):
            if len(rows) < n:
                rows.append({"id": f"{image_id}#{k}",
                             "translation": {"en": e.format(**en), "zh": z.format(**zh)}})
    return rows


# --------------------------------------------------------------------------- generators
def _labelled(names: list[str], make: Callable[[random.Random, str], dict[str, Any]]):
    """A generator cycling through shuffled labels so classes stay balanced."""

    def gen(rng: random.Random, n: int, split: str, seed: int, spec: TaskSpec) -> Rows:
        labels = [names[i % len(names)] for i in range(n)]
        rng.shuffle(labels)
        rows = []
        for i, lab in enumerate(labels):
            row = make(rng, lab) if split != "validation_mismatched" else make(rng, lab + "|mm")
            row["label"] = spec.features["label"].str2int(lab)
            if "idx" in spec.features:
                row["idx"] = i
            rows.append(row)
        return rows

    return gen


def _one(rng, n, fn, spec):  # single-sentence task from a (text, label) function
    rows = []
    for i in range(n):
        text, label = fn(rng)
        row = {spec.text_fields[0]: text, "label": label}
        if "idx" in spec.features:
            row["idx"] = i
        rows.append(row)
    return rows


def _nli3(lab: str, rng: random.Random) -> tuple[str, str]:
    lab, _, mm = lab.partition("|")
    return nli_pair(rng, lab, PLACES[8:] if mm else PLACES[:8])


def _stsb(rng, n, split, seed, spec):
    rows = []
    for i in range(n):
        a, b, score = similarity_pair(rng)
        rows.append({"sentence1": a, "sentence2": b, "label": score, "idx": i})
    return rows


def _sick(rng, n, split, seed, spec):
    rows = []
    labels = [["entailment", "neutral", "contradiction"][i % 3] for i in range(n)]
    rng.shuffle(labels)
    for i, lab in enumerate(labels):
        a, b = nli_pair(rng, lab)
        overlap = len(set(a.lower().split()) & set(b.lower().split())) / max(len(b.split()), 1)
        score = 1.0 + 3.5 * overlap + rng.uniform(-0.3, 0.3) + (0.5 if lab == "entailment" else 0)
        rows.append({"id": str(i + 1), "sentence_A": a, "sentence_B": b,
                     "label": spec.features["label"].str2int(lab),
                     "relatedness_score": round(min(5.0, max(1.0, score)), 1)})
    return rows


def _pair(make):  # (rng, positive) -> (a, b)  as a labelled generator's row builder
    return lambda fields, pos_name: (lambda rng, lab: dict(zip(fields, make(rng, lab == pos_name))))


GENERATORS: dict[str, Callable[[random.Random, int, str, int, TaskSpec], Rows]] = {
    "cola": lambda rng, n, split, seed, spec: _one(rng, n, acceptability_sentence, spec),
    "sst2": lambda rng, n, split, seed, spec: _one(rng, n, sentiment_sentence, spec),
    "rotten_tomatoes": lambda rng, n, split, seed, spec: _one(rng, n, sentiment_sentence, spec),
    "imdb": lambda rng, n, split, seed, spec: _one(rng, n, sentiment_sentence, spec),
    "yelp_polarity": lambda rng, n, split, seed, spec: _one(rng, n, sentiment_sentence, spec),
    "elec": lambda rng, n, split, seed, spec: _one(rng, n, sentiment_sentence, spec),
    "adversarial_qa": lambda rng, n, split, seed, spec: squad_rows(rng, n, split, seed, spec.name, 0.0),
    "mrpc": _labelled(["not_equivalent", "equivalent"],
                      _pair(paraphrase_pair)(("sentence1", "sentence2"), "equivalent")),
    "qqp": _labelled(["not_duplicate", "duplicate"],
                     _pair(question_pair)(("question1", "question2"), "duplicate")),
    "stsb": _stsb,
    "mnli": _labelled(["entailment", "neutral", "contradiction"],
                      lambda rng, lab: dict(zip(("premise", "hypothesis"), _nli3(lab, rng)))),
    "snli": _labelled(["entailment", "neutral", "contradiction"],
                      lambda rng, lab: dict(zip(("premise", "hypothesis"), nli_pair(rng, lab)))),
    "rte": _labelled(["entailment", "not_entailment"],
                     lambda rng, lab: dict(zip(("sentence1", "sentence2"), nli_pair(
                         rng, "entailment" if lab == "entailment" else rng.choice(["neutral", "contradiction"]))))),
    "qnli": _labelled(["entailment", "not_entailment"],
                      _pair(qnli_pair)(("question", "sentence"), "entailment")),
    "wnli": _labelled(["not_entailment", "entailment"],
                      _pair(wnli_pair)(("sentence1", "sentence2"), "entailment")),
    "sick": _sick,
    "squad": lambda rng, n, split, seed, spec: squad_rows(rng, n, split, seed, spec.name, 0.0),
    "squad_v2": lambda rng, n, split, seed, spec: squad_rows(rng, n, split, seed, spec.name, 1 / 3),
    "corpus": lambda rng, n, split, seed, spec: corpus_rows(rng, n),
    "tatoeba_cmn": lambda rng, n, split, seed, spec: [
        {"id": str(i), "translation": dict(zip(("en", "zh"), bitext_pair(rng)))} for i in range(n)],
    "caption_bitext": lambda rng, n, split, seed, spec: caption_bitext_rows(rng, n, split, seed),
    "caption_en": lambda rng, n, split, seed, spec: caption_rows(rng, n, split, seed, "en"),
    "caption_zh": lambda rng, n, split, seed, spec: caption_rows(rng, n, split, seed, "zh"),
}


def register_generator(name: str, fn: Callable) -> Callable:
    """Add a generator ``fn(rng, n, split, seed, spec) -> rows`` (a paper's task module)."""
    if name in GENERATORS and GENERATORS[name] is not fn:
        raise ValueError(f"embedded generator {name!r} registered twice")
    GENERATORS[name] = fn
    return fn


def generate(spec: TaskSpec, sizes: dict[str, int], seed: int) -> dict[str, Rows]:
    """Rows for each split of `spec`: ``sizes[split]`` rows from stream (seed, task, split)."""
    gen = GENERATORS[spec.embedded]
    return {split: gen(stream(seed, spec.name, split), sizes[split], split, seed, spec)
            for split in spec.splits}
