"""ZeroGen's tasks: prompts, label maps and where the gold data come from (spec A.3).

Each :class:`ZeroGenTask` is data: the x1 (context) prompt, the per-label x2 prompts, the
PROMPTING (zs) templates, counter labels for self-debiasing, and a label map from the
label's *meaning* to the class index of the arkbench task that supplies the gold data.

Placeholders: ``<C>`` context (movie title, premise, QA context), ``<X>`` text to score
(PROMPTING), ``<Y>`` answer (QA). Strings are ZeroGen's task JSON files, copied exactly.

Label maps. ZeroGen's JSON keys are label ids "0"/"1", and for SST-2 and IMDb "0" means
*positive* (spec A.3). HF ``imdb`` and GLUE SST-2 use 0 = negative, so a literal reuse
would invert IMDb (the spec's warning). Here prompts are keyed by meaning
("positive"/"negative", "entailment"/"not_entailment") and ``labels`` maps meanings to the
gold task's ClassLabel names; ``check_label_map`` asserts that map against the registry
(and the tests assert it against gold rows). ``zerogen_ids`` keeps ZeroGen's ids for the
provenance record.

Adding a task is adding an entry to ``_ENTRIES``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping

MOVIE_X1 = 'Movie: "'
MOVIE_X2 = {
    "positive": 'The movie review in positive sentiment for movie "<C>" is: "',
    "negative": 'The movie review in negative sentiment for movie "<C>" is: "',
}
MOVIE_ZS = {
    "positive": 'The movie review in positive sentiment is: "<X>"',
    "negative": 'The movie review in negative sentiment is: "<X>"',
}
QNLI_X2 = {
    "entailment": 'Information: "<C>"\nQuestion (answer in above information): "',
    "not_entailment": 'Information: "<C>"\nQuestion (answer not in above information): "',
}
RTE_X2 = {
    "entailment": '"<C>"\nBased on the above description, the following sentence is definitely correct: "',
    "not_entailment": '"<C>"\nBased on the above description, the following sentence is definitely wrong: "',
}
QA_X2 = 'The context is: "<C>"\n"<Y>" is the answer of the following question: "'
QA_ZS = 'The context is: "<C>"\nThe answer to the question "<X>" is: "'


@dataclass(frozen=True)
class ZeroGenTask:
    name: str
    kind: Literal["tc", "nli", "qa"]
    data_task: str                               # arkbench registry task with the gold data
    labels: Mapping[str, str] = field(default_factory=dict)   # meaning -> gold ClassLabel name
    zerogen_ids: Mapping[str, str] = field(default_factory=dict)   # meaning -> ZeroGen's JSON key
    x1: str | None = None                        # context prompt (TC); None: contexts from gold
    x2: Mapping[str, str] = field(default_factory=dict)   # meaning -> prompt with <C> (QA: one, key "")
    zs: Mapping[str, str] = field(default_factory=dict)   # meaning -> PROMPTING template with <X>
    counter: Mapping[str, tuple[str, ...]] = field(default_factory=dict)   # self-debiasing
    context_field: str | None = None             # gold field that is C (NLI premise / QA context)
    text_field: str = "text"                     # gold field that is X
    question: bool = False                       # QNLI: X must be a question (cut at "?")
    prompt_family: str = ""                      # tasks sharing prompts share synthetic data
    evidence: str = "[code]"                     # where the prompts come from (spec tags)

    @property
    def label_names(self) -> list[str]:
        return list(self.labels)

    def x2_prompt(self, label: str, context: str, answer: str | None = None) -> str:
        p = self.x2[label].replace("<C>", context)
        return p.replace("<Y>", answer) if answer is not None else p

    def zs_prompt(self, label: str, text: str, context: str | None = None) -> str:
        p = self.zs[label].replace("<X>", text)
        return p.replace("<C>", context) if context is not None else p

    def counter_prompts(self, label: str, context: str) -> list[str]:
        return [self.x2_prompt(c, context) for c in self.counter.get(label, ())]


def _movie(name: str, data_task: str, pos: str, neg: str, text_field: str = "text") -> ZeroGenTask:
    return ZeroGenTask(name=name, kind="tc", data_task=data_task, labels={"positive": pos, "negative": neg},
                       zerogen_ids={"positive": "0", "negative": "1"}, x1=MOVIE_X1, x2=MOVIE_X2, zs=MOVIE_ZS,
                       text_field=text_field, prompt_family="movie")


_ENTRIES = [
    _movie("sst2", "sst2", "positive", "negative", text_field="sentence"),
    _movie("imdb", "imdb", "pos", "neg"),
    # SunGen: the movie tasks, "rotten tomato" included, use ZeroGen's prompts [2nd]
    ZeroGenTask(**{**_movie("rotten_tomatoes", "rotten_tomatoes", "pos", "neg").__dict__,
                   "evidence": "[2nd] SunGen README: same prompts as ZeroGen"}),
    ZeroGenTask(
        name="elec", kind="tc", data_task="elec", labels={"positive": "pos", "negative": "neg"},
        zerogen_ids={"positive": "0", "negative": "1"}, x1='Product: "',
        x2={"positive": 'The "<C>" product review in positive sentiment is: "',
            "negative": 'The "<C>" product review in negative sentiment is: "'},
        zs={"positive": 'The product review in positive sentiment is: "<X>"',
            "negative": 'The product review in negative sentiment is: "<X>"'},
        prompt_family="elec",
        evidence="[2nd] SunGen x2 prompts; x1 'Product: \"' and the zs strings are ours [UNVERIFIED]"),
    ZeroGenTask(
        name="yelp", kind="tc", data_task="yelp_polarity", labels={"positive": "2", "negative": "1"},
        zerogen_ids={"negative": "0", "positive": "1"}, x1='Restaurant: "',
        x2={"negative": 'The "<C>" restaurant review in negative sentiment is: "',
            "positive": 'The "<C>" restaurant review in positive sentiment is: "'},
        zs={"negative": 'The restaurant review in negative sentiment is: "<X>"',
            "positive": 'The restaurant review in positive sentiment is: "<X>"'},
        prompt_family="yelp",
        evidence="[2nd] SunGen x1/x2 prompts; the zs strings are ours [UNVERIFIED]"),
    ZeroGenTask(
        name="qnli", kind="nli", data_task="qnli", labels={"entailment": "entailment",
                                                           "not_entailment": "not_entailment"},
        zerogen_ids={"entailment": "0", "not_entailment": "1"}, x2=QNLI_X2,
        zs={k: v + '<X>"' for k, v in QNLI_X2.items()},
        counter={"entailment": ("not_entailment",), "not_entailment": ("entailment",)},
        context_field="sentence", text_field="question", question=True, prompt_family="qnli"),
    ZeroGenTask(
        name="rte", kind="nli", data_task="rte", labels={"entailment": "entailment",
                                                         "not_entailment": "not_entailment"},
        zerogen_ids={"entailment": "0", "not_entailment": "1"}, x2=RTE_X2,
        zs={k: v + '<X>"' for k, v in RTE_X2.items()},
        counter={"entailment": ("not_entailment",), "not_entailment": ("entailment",)},
        context_field="sentence1", text_field="sentence2", prompt_family="rte"),
    ZeroGenTask(name="squad", kind="qa", data_task="squad", x2={"": QA_X2}, zs={"": QA_ZS},
                context_field="context", text_field="question", prompt_family="qa"),
    ZeroGenTask(name="adversarial_qa", kind="qa", data_task="adversarial_qa", x2={"": QA_X2}, zs={"": QA_ZS},
                context_field="context", text_field="question", prompt_family="qa"),
]

TASKS: dict[str, ZeroGenTask] = {t.name: t for t in _ENTRIES}


def get_task(name: str) -> ZeroGenTask:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown ZeroGen task {name!r}; known: {', '.join(TASKS)}") from None


def check_label_map(task: ZeroGenTask) -> dict[str, int]:
    """meaning -> class index of the gold task; raises if a name is not one of its labels."""
    from ...data.registry import get_task as data_task

    if task.kind == "qa":
        return {}
    spec = data_task(task.data_task)
    names = spec.label_names or []
    out = {}
    for meaning, name in task.labels.items():
        if name not in names:
            raise ValueError(f"zerogen task {task.name!r}: label {meaning!r} maps to {name!r}, which is not "
                             f"a label of data task {task.data_task!r} ({names})")
        out[meaning] = names.index(name)
    if sorted(out.values()) != list(range(len(names))):
        raise ValueError(f"zerogen task {task.name!r}: label map {dict(task.labels)} does not cover "
                         f"every label of {task.data_task!r} ({names}) exactly once")
    return out
