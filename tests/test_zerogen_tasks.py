"""ZeroGen tasks: prompts as the spec gives them, label maps asserted against gold rows, hub loaders."""
from __future__ import annotations

import datasets
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from arkbench.data import get_task as data_task
from arkbench.data import load_task
from arkbench.papers.zerogen import tasks as T

POS_CUES = ("masterpiece", "wonderful", "delightful", "brilliant", "beautifully")
NEG_CUES = ("worst", "boring", "mess", "dull", "tedious")


def test_prompts_are_zerogens_strings():
    sst2 = T.get_task("sst2")
    assert sst2.x1 == 'Movie: "'
    assert sst2.x2_prompt("positive", "Up") == 'The movie review in positive sentiment for movie "Up" is: "'
    assert sst2.zs_prompt("negative", "bad .") == 'The movie review in negative sentiment is: "bad ."'
    rte = T.get_task("rte")
    assert rte.x2_prompt("not_entailment", "P") == (
        '"P"\nBased on the above description, the following sentence is definitely wrong: "')
    assert rte.counter_prompts("entailment", "P") == [rte.x2_prompt("not_entailment", "P")]
    assert rte.zs_prompt("entailment", "H", "P").endswith('definitely correct: "H"')
    qnli = T.get_task("qnli")
    assert qnli.question and qnli.context_field == "sentence" and qnli.text_field == "question"
    qa = T.get_task("squad")
    assert qa.x2_prompt("", "ctx", "Paris") == 'The context is: "ctx"\n"Paris" is the answer of the following question: "'
    # tasks sharing prompts share synthetic data (the ZeroGen README: IMDb and SST-2)
    assert {T.get_task(n).prompt_family for n in ("sst2", "imdb", "rotten_tomatoes")} == {"movie"}


@pytest.mark.parametrize("name", [n for n, t in T.TASKS.items() if t.kind != "qa"])
def test_label_map_covers_the_gold_labels(name):
    lab = T.check_label_map(T.get_task(name))
    assert sorted(lab.values()) == list(range(data_task(T.get_task(name).data_task).num_labels))


def test_imdb_is_not_inverted():
    """ZeroGen's JSON id "0" means positive, HF imdb's 0 means neg: keyed by meaning, both end up right."""
    assert T.get_task("imdb").zerogen_ids["positive"] == "0"
    assert T.check_label_map(T.get_task("imdb")) == {"positive": 1, "negative": 0}
    assert T.check_label_map(T.get_task("sst2")) == {"positive": 1, "negative": 0}
    assert T.check_label_map(T.get_task("yelp")) == {"positive": 1, "negative": 0}


def test_bad_label_map_is_named():
    bad = T.ZeroGenTask(name="x", kind="tc", data_task="sst2", labels={"positive": "pos", "negative": "neg"})
    with pytest.raises(ValueError, match="maps to 'pos', which is not a label of data task 'sst2'"):
        T.check_label_map(bad)


def _cue_agreement(rows, text_field, pos_idx):
    agree = total = 0
    for r in rows:
        words = r[text_field].lower()
        pos = any(c in words for c in POS_CUES)
        neg = any(c in words for c in NEG_CUES)
        if pos == neg:
            continue
        total += 1
        agree += (r["label"] == pos_idx) == pos
    return agree, total


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["sst2", "rotten_tomatoes"])
def test_label_map_against_real_gold_rows(shared_data, name):
    """Sentences with strong positive / negative cue words carry the label the map calls positive /
    negative (an inverted map gives agreement near 0)."""
    task = T.get_task(name)
    dd = load_task(task.data_task, source="local", local_dir=shared_data, max_examples=4000)
    agree, total = _cue_agreement(dd[data_task(task.data_task).train_split], task.text_field,
                                  T.check_label_map(task)["positive"])
    assert total >= 50 and agree / total > 0.7, (agree, total)   # inverted: < 0.3


@pytest.mark.realdata
def test_rte_label_map_against_the_raw_file(shared_data):
    """The RTE label strings in the TSV reach the map unchanged (entailment -> 'entailment')."""
    import csv

    path = shared_data / "glue_data" / "RTE" / "dev.tsv"
    with path.open(encoding="utf-8") as f:
        raw = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    dd = load_task("rte", source="local", local_dir=shared_data)
    names = {v: k for k, v in T.check_label_map(T.get_task("rte")).items()}
    rows = dd["validation"].to_list()
    assert len(rows) == len(raw) > 200
    for r, x in zip(raw, rows):
        assert r["sentence2"] == x["sentence2"] and names[x["label"]] == r["label"]


# ----------------------------------------------------------------------------- hub fixtures
def _fake_hub(monkeypatch, tables: dict[str, dict]):
    seen = []

    def fake(path, name=None, **kw):
        seen.append((path, name))
        return DatasetDict({s: Dataset.from_dict(v["rows"], features=v.get("features")) for s, v in tables.items()})

    monkeypatch.setattr(datasets, "load_dataset", fake)
    return seen


def test_imdb_hub_loader_and_label_map(monkeypatch):
    feats = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    rows = {"text": ["A wonderful, moving film.", "The worst film of the year.<br />Avoid."], "label": [1, 0]}
    seen = _fake_hub(monkeypatch, {"train": {"rows": rows, "features": feats},
                                   "test": {"rows": rows, "features": feats},
                                   "unsupervised": {"rows": {"text": ["x"], "label": [-1]}}})
    dd = load_task("imdb", source="hub")
    assert seen == [("stanfordnlp/imdb", None)] and list(dd) == ["train", "test"]
    pos = T.check_label_map(T.get_task("imdb"))["positive"]
    assert dd["test"][0]["label"] == pos and dd["test"][1]["label"] != pos


def test_yelp_hub_loader_and_label_map(monkeypatch):
    feats = Features({"label": ClassLabel(names=["1", "2"]), "text": Value("string")})
    rows = {"label": [0, 1], "text": ["Cold food, rude staff.", "Best tacos in town!"]}
    seen = _fake_hub(monkeypatch, {"train": {"rows": rows, "features": feats}, "test": {"rows": rows, "features": feats}})
    dd = load_task("yelp_polarity", source="hub")
    assert seen == [("fancyzhx/yelp_polarity", None)]
    pos = T.check_label_map(T.get_task("yelp"))["positive"]
    assert dd["train"][1]["label"] == pos and dd["train"][0]["label"] != pos


def test_adversarial_qa_hub_loader(monkeypatch):
    rows = {"id": ["a1"], "title": ["T"], "context": ["Paris is in France."], "question": ["Where is Paris?"],
            "answers": [{"text": ["France"], "answer_start": [12]}],
            "metadata": [{"split": "train", "model_in_the_loop": "BiDAF"}]}
    seen = _fake_hub(monkeypatch, {"train": {"rows": rows}, "validation": {"rows": rows}, "test": {"rows": rows}})
    dd = load_task("adversarial_qa", source="hub")
    assert seen == [("UCLNLP/adversarial_qa", "adversarialQA")]
    assert dd["validation"].features == data_task("adversarial_qa").features
    r = dd["validation"][0]
    assert r["context"][r["answers"]["answer_start"][0]:].startswith(r["answers"]["text"][0])


def test_elec_has_no_hub_copy():
    with pytest.raises(ValueError, match="no hub counterpart"):
        load_task("elec", source="hub")
