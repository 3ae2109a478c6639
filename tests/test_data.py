"""Data layer: registry, embedded source, splits, hub normalisation, download stage."""
from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from arkbench.data import TASKS, build_task, get_task, load_prepared, load_task
from arkbench.data import hub as hub_mod
from arkbench.data.splits import carve

SMALL = (40, 20)

# Hub schemas written out by hand (as shown on the dataset cards), so a registry
# edit that drifts from the hub fails here.
GLUE = {"cola": (["sentence"], ["unacceptable", "acceptable"]),
        "sst2": (["sentence"], ["negative", "positive"]),
        "mrpc": (["sentence1", "sentence2"], ["not_equivalent", "equivalent"]),
        "qqp": (["question1", "question2"], ["not_duplicate", "duplicate"]),
        "stsb": (["sentence1", "sentence2"], None),
        "mnli": (["premise", "hypothesis"], ["entailment", "neutral", "contradiction"]),
        "qnli": (["question", "sentence"], ["entailment", "not_entailment"]),
        "rte": (["sentence1", "sentence2"], ["entailment", "not_entailment"]),
        "wnli": (["sentence1", "sentence2"], ["not_entailment", "entailment"])}
SQUAD = Features({"id": Value("string"), "title": Value("string"), "context": Value("string"),
                  "question": Value("string"),
                  "answers": {"text": List(Value("string")), "answer_start": List(Value("int32"))}})


@pytest.fixture(scope="module")
def embedded() -> dict[str, DatasetDict]:
    return {n: load_task(n, embedded_sizes=SMALL) for n in TASKS}


# --------------------------------------------------------------------------- registry
@pytest.mark.parametrize("name", list(GLUE))
def test_glue_schema_matches_hub(name):
    fields, labels = GLUE[name]
    expected = {f: Value("string") for f in fields}
    expected["label"] = ClassLabel(names=labels) if labels else Value("float32")
    expected["idx"] = Value("int32")
    spec = get_task(name)
    assert spec.features == Features(expected)
    assert list(spec.features) == [*fields, "label", "idx"]
    assert spec.metric == f"glue/{name}"
    assert spec.text_fields == tuple(fields)
    assert spec.num_labels == (len(labels) if labels else 1)
    assert spec.hub.id.endswith("glue") and spec.hub.config == name


def test_other_schemas():
    assert get_task("squad").features == SQUAD == get_task("squad_v2").features
    assert get_task("squad").metric == "squad" and get_task("squad_v2").metric == "squad_v2"
    assert get_task("mnli").eval_splits == ("validation_matched", "validation_mismatched")
    assert get_task("rotten_tomatoes").label_names == ["neg", "pos"]
    assert get_task("sick").label_names == ["entailment", "neutral", "contradiction"]
    assert get_task("snli").features["label"].names == ["entailment", "neutral", "contradiction"]
    assert list(get_task("corpus").features) == ["text"]
    tr = get_task("tatoeba_cmn").features["translation"]
    assert tr.languages == ["en", "zh"]
    families = {t.family for t in TASKS.values()}
    assert {"glue", "squad", "nli", "corpus", "caption", "bitext"} <= families


def test_unknown_task_lists_known_names():
    with pytest.raises(KeyError) as e:
        get_task("colaa")
    assert "colaa" in str(e.value) and "cola" in str(e.value) and "squad_v2" in str(e.value)
    with pytest.raises(ValueError, match="unknown data source 'web'"):
        load_task("cola", source="web")


# --------------------------------------------------------------------------- embedded
@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_loads_from_embedded(embedded, name):
    spec, dd = get_task(name), embedded[name]
    assert list(dd) == list(spec.splits)
    for split, ds in dd.items():
        assert ds.features == spec.features
        assert len(ds) == (SMALL[0] if split == spec.train_split else SMALL[1])
        for field in spec.text_fields:
            values = ds[field]
            ok = any(values) if name == "corpus" else all(values)  # wikitext keeps blank lines
            assert ok, f"{name}/{split}: empty {field}"


def test_determinism():
    a = load_task("mrpc", embedded_sizes=SMALL, seed=3)
    b = load_task("mrpc", embedded_sizes=SMALL, seed=3)
    c = load_task("mrpc", embedded_sizes=SMALL, seed=4)
    assert a["train"].to_list() == b["train"].to_list()
    assert a["train"].to_list() != c["train"].to_list()
    assert a["train"]["sentence1"] != a["validation"]["sentence1"][:len(a["train"])]


@pytest.mark.parametrize("name", [n for n, t in TASKS.items() if t.problem_type == "classification"])
def test_label_balance(name):
    dd = load_task(name, embedded_sizes=(300, 60))
    counts = np.bincount(dd["train"]["label"], minlength=get_task(name).num_labels)
    assert counts.min() >= 0.6 * len(dd["train"]) / len(counts), counts


def test_stsb_scores_in_range_and_spread():
    y = np.array(load_task("stsb", embedded_sizes=(300, 50))["train"]["label"])
    assert y.min() >= 0 and y.max() <= 5 and y.std() > 1


@pytest.mark.parametrize("name", ["squad", "squad_v2"])
def test_answer_spans(embedded, name):
    unanswerable = 0
    for split in ("train", "validation"):
        for row in embedded[name][split]:
            a = row["answers"]
            assert len(a["text"]) == len(a["answer_start"])
            unanswerable += not a["text"]
            for text, start in zip(a["text"], a["answer_start"]):
                assert row["context"][start:start + len(text)] == text
    assert (unanswerable > 0) == (name == "squad_v2")


def test_signal_is_learnable():
    """A bag-of-words model beats chance on embedded data (so a tiny Transformer can too)."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    for name in ("sst2", "cola", "rte", "mnli"):
        spec = get_task(name)
        dd = load_task(name, embedded_sizes=(600, 200))
        join = lambda ds: [" ".join(f"{i}_{w}" for i, f in enumerate(spec.text_fields)  # noqa: E731
                                    for w in r[f].lower().split()) for r in ds]
        vec = CountVectorizer(ngram_range=(1, 2), token_pattern=r"\S+")
        clf = LogisticRegression(max_iter=1000).fit(vec.fit_transform(join(dd["train"])), dd["train"]["label"])
        ev = dd[spec.eval_splits[0]]
        acc = clf.score(vec.transform(join(ev)), ev["label"])
        assert acc > 1 / spec.num_labels + 0.08, (name, acc)


def test_captions_have_images(embedded):
    row = embedded["flickr8k"]["train"][0]
    assert row["image"].size == (32, 32) and len(row["captions"]) == 5
    zh = embedded["flickr8kcn"]["train"][0]["captions"][0]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh)
    assert embedded["flickr8kcn_zhb"]["train"][0]["translation"].keys() == {"en", "zh"}


def test_corpus_is_a_few_thousand_sentences():
    text = load_task("corpus", embedded_sizes=(300, 50))["train"]["text"]  # the smoke size
    assert sum(t.count(".") + t.count("!") for t in text) > 1500


# --------------------------------------------------------------------------- caps & splits
def test_max_examples_and_carve():
    dd = load_task("rte", embedded_sizes=(100, 50), max_examples=30, max_eval_examples=10)
    assert (len(dd["train"]), len(dd["validation"])) == (30, 10)
    dd2 = load_task("rte", embedded_sizes=(100, 50), eval_split="carve")
    assert (len(dd2["train"]), len(dd2["validation"])) == (90, 10)
    assert set(dd2["validation"]["idx"]) <= set(load_task("rte", embedded_sizes=(100, 50))["train"]["idx"])


def test_carve_groups_stay_together():
    ds = Dataset.from_dict({"g": [i // 3 for i in range(60)], "x": list(range(60))})
    parts = carve(ds, {"validation": 0.2}, rest="train", seed=1, group_by="g")
    assert set(parts["train"]["g"]).isdisjoint(parts["validation"]["g"])
    assert len(parts["train"]) + len(parts["validation"]) == 60 and len(parts["validation"]) == 12
    again = carve(ds, {"validation": 0.2}, rest="train", seed=1, group_by="g")
    assert again["validation"]["x"] == parts["validation"]["x"]


def test_eval_split_needs_mapping_for_mnli():
    with pytest.raises(ValueError, match="2 evaluation splits"):
        load_task("mnli", embedded_sizes=SMALL, eval_split="dev")


# --------------------------------------------------------------------------- hub
def test_hub_source_normalises(monkeypatch):
    calls = []

    def fake_load_dataset(path, name=None, **kw):
        calls.append((path, name))
        mk = lambda n: Dataset.from_dict({  # noqa: E731
            "sentence1": ["a b"] * n, "sentence2": ["c d"] * n, "label": [0, 1] * (n // 2),
            "idx": list(range(n)), "extra": ["x"] * n})
        return DatasetDict({"train": mk(8), "validation": mk(4), "test": mk(2)})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    dd = load_task("rte", source="hub")
    assert calls == [("nyu-mll/glue", "rte")]
    assert list(dd) == ["train", "validation"] and dd["train"].features == get_task("rte").features
    assert len(dd["train"]) == 8


def test_hub_drops_unlabelled_snli(monkeypatch):
    def fake(path, name=None, **kw):
        ds = Dataset.from_dict({"premise": ["p"] * 4, "hypothesis": ["h"] * 4, "label": [0, -1, 2, 1]})
        return DatasetDict({"train": ds, "validation": ds, "test": ds})

    monkeypatch.setattr(datasets, "load_dataset", fake)
    dd = load_task("snli", source="hub")
    assert dd["validation"]["label"] == [0, 2, 1]


def test_hub_missing_for_captions():
    with pytest.raises(ValueError, match="no hub counterpart"):
        load_task("flickr8k", source="hub")
    with pytest.raises(ValueError, match="lacks column"):
        hub_mod.normalise(Dataset.from_dict({"foo": ["x"]}), get_task("rte"))


# --------------------------------------------------------------------------- download stage
@pytest.fixture
def stage_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARKBENCH_TRACKING", "off")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    return tmp_path


def _params(path: Path, download: str) -> Path:
    p = path / "params.yaml"
    p.write_text("profile: smoke\nseed: 0\ndownload:\n" + download)
    return p


def test_download_stage_end_to_end(stage_env):
    from arkbench.data.download import run
    from arkbench.stage import stage_main

    p = _params(stage_env, "  tasks: [rte, squad, mnli]\n  embedded_train_size: 30\n"
                           "  embedded_eval_size: 12\n  max_eval_examples: 10\n")
    metrics = stage_main("download", run, argv=["--params-file", str(p)],
                         metrics_path="metrics/download.json")
    assert metrics["rows"]["rte"] == {"train": 30, "validation": 10}
    manifest = json.loads((stage_env / "data/tasks/manifest.json").read_text())
    assert set(manifest["tasks"]) == {"rte", "squad", "mnli"}
    assert manifest["tasks"]["mnli"]["splits"]["validation_mismatched"] == 10
    dd = load_prepared("rte", root=stage_env / "data/tasks")
    assert dd["train"].features == get_task("rte").features
    assert json.loads((stage_env / "metrics/download.json").read_text()) == metrics
    # same params -> byte-identical outputs (DVC sees no change)
    before = {f: f.read_bytes() for f in (stage_env / "data/tasks").rglob("*") if f.is_file()}
    stage_main("download", run, argv=["--params-file", str(p)])
    after = {f: f.read_bytes() for f in (stage_env / "data/tasks").rglob("*") if f.is_file()}
    assert before == after
    with pytest.raises(FileNotFoundError, match="has not been prepared"):
        load_prepared("cola", root=stage_env / "data/tasks")


def test_download_rejects_bad_task_before_writing(stage_env, capsys):
    from arkbench.data.download import run
    from arkbench.stage import stage_main

    p = _params(stage_env, "  tasks: [rte, glue_rte]\n")
    with pytest.raises(SystemExit) as e:
        stage_main("download", run, argv=["--params-file", str(p)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "glue_rte" in err and "allowed:" in err and "cola" in err
    assert not (stage_env / "data").exists()


def test_download_stops_at_once_when_local_folder_missing(stage_env, capsys):
    """source=local with no data folder: the stage fails before any work, naming the folder and the
    way out (download.source=hub). Without check_local_dir the failure came from the first reader,
    minutes later on a big task list, naming a file deep inside the folder."""
    from arkbench.data.download import run
    from arkbench.stage import stage_main

    p = _params(stage_env, "  source: local\n  local_dir: ../no_such_data\n  tasks: [rte, sst2, corpus]\n")
    with pytest.raises(SystemExit) as e:
        stage_main("download", run, argv=["--params-file", str(p)])
    assert e.value.code == 2
    msg = capsys.readouterr().err
    assert msg.startswith("[download] data error: ")
    assert "download.local_dir" in msg and "'../no_such_data'" in msg and "not found" in msg
    assert "download.source=hub" in msg and "rte" in msg
    assert not (stage_env / "data").exists()
    # generated tasks need no folder: the same missing folder is fine when nothing reads it
    ok = _params(stage_env, "  local_dir: ../no_such_data\n  tasks: [rte]\n  embedded_train_size: 20\n"
                            "  embedded_eval_size: 10\n")
    stage_main("download", run, argv=["--params-file", str(ok)])
    assert (stage_env / "data/tasks/rte").is_dir()


def test_download_params_validation():
    from arkbench.data.download import DownloadParams

    with pytest.raises(ValueError, match="no hub counterpart"):
        DownloadParams(source="hub", tasks=["flickr8k"])
    with pytest.raises(ValueError, match="only 'carve'"):
        DownloadParams(eval_split={"mnli": "dev"})
    with pytest.raises(ValueError):
        DownloadParams(max_train_examples=0)
    ok = DownloadParams(source="hub", tasks=["flickr8k", "rte"], source_for={"flickr8k": "local"})
    assert ok.source_of("flickr8k") == "local" and ok.source_of("rte") == "hub"


def test_repo_params_download_section_valid(repo_root):
    from arkbench.config import effective_section, profile_names, read_params, validate_section

    raw = read_params(repo_root / "params.yaml")
    for prof in profile_names(raw):
        validate_section("download", effective_section(raw, "download", prof))
    assert set(raw["download"]["tasks"]) == set(TASKS)


def test_whole_sentence_carve_on_a_phrase_pool():
    """SST-2's layout in miniature: every phrase of each sentence is a row of its own. Evaluation rows
    must be whole sentences, and no phrase found only inside an evaluation sentence may stay in train.
    (With the plain row carve -- rule None -- phrases land in validation: checked below.)"""
    from arkbench.data.splits import carve

    sentences = [f"w{i} good film number {i} ." for i in range(40)]
    rows = []
    for s in sentences:
        t = s.split()
        rows += [s, " ".join(t[:2]), " ".join(t[1:4]), t[0]]
    pool = Dataset.from_dict({"sentence": rows, "label": [0] * len(rows)})
    out = carve(pool, {"validation": 0.25}, rest="train", seed=0, rule="whole_sentences", text_field="sentence")
    val, train = out["validation"]["sentence"], out["train"]["sentence"]
    assert len(val) == 10 and set(val) <= set(sentences)
    own = {w for s in val for w in [s.split()[0]]}              # w<i> appears only in sentence i
    assert not any(r.split()[0] in own for r in train)          # none of their phrases kept in train
    assert "good film number" in train                         # shared phrases stay (official SST-2 too)
    plain = carve(pool, {"validation": 0.25}, rest="train", seed=0, text_field="sentence")
    assert not set(plain["validation"]["sentence"]) <= set(sentences)


def test_build_task_reports_carving():
    _, info = build_task("sst2", embedded_sizes=SMALL, eval_split="carve")
    assert info["carved"] == ["validation"]
