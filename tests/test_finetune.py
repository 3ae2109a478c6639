"""Fine-tuning on embedded data with a tiny encoder (seconds on 2 CPU cores)."""
from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest
import torch
import yaml

from arkbench.config import ParamsError, validate_section
from arkbench.data import load_task
from arkbench.models import EncoderConfig, MaskedLM, save_pretrained
from arkbench.tokenization import train_wordpiece
from arkbench.training.finetune import FinetuneHP, FinetuneParams, check_task, run_task

FAST = dict(lr=1e-3, batch_size=16, epochs=3, max_seq_len=64, doc_stride=16, max_query_len=16,
            eval_batch_size=64)


@pytest.fixture(scope="module")
def data():
    cache: dict[str, object] = {}

    def get(task: str):
        if task not in cache:
            cache[task] = load_task(task, "embedded", embedded_sizes=(300, 100))
        return cache[task]

    return get


@pytest.fixture(scope="module")
def tiny_ckpt(data):
    """A saved tiny 'pre-training' output: encoder_config.json + weights + its tokenizer.

    In a private temp folder: pytest's numbered tmp dirs can be pruned by other pytest
    sessions running in the same working tree while this module is still using it.
    """
    texts = []
    for t in ("rte", "stsb", "mnli", "squad", "squad_v2", "cola"):
        dd = data(t)
        for col in ("sentence", "sentence1", "sentence2", "premise", "hypothesis", "question", "context"):
            if col in dd["train"].column_names:
                texts += list(dd["train"][col])
    tmp = tempfile.TemporaryDirectory(prefix="arkbench-ft-")
    folder = Path(tmp.name) / "tiny"
    tok = train_wordpiece(texts, vocab_size=600, min_frequency=1)
    cfg = EncoderConfig(vocab_size=len(tok), hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                        max_position_embeddings=64)
    torch.manual_seed(0)
    save_pretrained(MaskedLM(cfg), folder)
    tok.save_pretrained(str(folder))
    yield folder
    tmp.cleanup()


def test_classification_learns_above_chance(tiny_ckpt, data):
    res = run_task("rte", tiny_ckpt, {**FAST, "lr": 2e-3, "epochs": 5}, seeds=[0], data=data("rte"))
    assert res["task"] == "rte" and res["model"] == "tiny" and res["metric"] == "accuracy"
    assert res["n_seeds"] == 1 and res["std"] == 0.0
    assert res["mean"] > 0.65, res                        # chance is 0.5 (balanced classes)
    assert res["seeds"][0]["train_steps"] == (300 // 16) * 5   # the incomplete last batch is dropped


def test_seeds_mean_std_and_determinism(tiny_ckpt, data):
    hp = FinetuneHP(**{**FAST, "max_steps": 25})
    a = run_task("mrpc", tiny_ckpt, hp, seeds=[0, 1], data=data("mrpc"))
    b = run_task("mrpc", tiny_ckpt, hp, seeds=[0, 1], data=data("mrpc"))
    assert a == b                                          # same params + seed -> same metrics
    assert a["metric"] == "f1" and {"f1", "accuracy"} <= set(a["seeds"][0])
    vals = [s["f1"] for s in a["seeds"]]
    assert a["mean"] == pytest.approx(sum(vals) / 2)
    assert a["std"] == pytest.approx(abs(vals[0] - vals[1]) / math.sqrt(2))   # sample std
    assert a["aggregate"]["accuracy"]["mean"] == pytest.approx(sum(s["accuracy"] for s in a["seeds"]) / 2)
    assert [s["seed"] for s in a["seeds"]] == [0, 1]
    assert a["seeds"][0] != a["seeds"][1]                  # seeds really differ
    json.dumps(a)                                          # DVC metrics file must serialise


def test_regression_stsb(tiny_ckpt, data):
    seen = {}

    def on_trained(seed, model, loader):
        batch = next(iter(loader))
        assert set(batch) == {"input_ids", "attention_mask", "token_type_ids"}
        assert not model.training
        with torch.no_grad():
            out = model(**batch).logits
        seen["shape"] = tuple(out.shape)
        return {"pred_std": float(out.std())}

    res = run_task("stsb", tiny_ckpt, {**FAST, "max_steps": 20}, seeds=[0], data=data("stsb"),
                   on_trained=on_trained)
    s = res["seeds"][0]
    assert res["metric"] == "pearson" and {"pearson", "spearmanr", "pred_std"} <= set(s)
    assert seen["shape"][1] == 1                           # one output: regression head
    assert math.isfinite(s["pearson"]) and s["pred_std"] > 0
    assert "pred_std" in res["aggregate"]


def test_mnli_matched_and_mismatched(tiny_ckpt, data):
    res = run_task("mnli", tiny_ckpt, {**FAST, "max_steps": 10}, seeds=[0], data=data("mnli"))
    s = res["seeds"][0]
    assert {"accuracy_matched", "accuracy_mismatched", "accuracy"} <= set(s)
    assert s["accuracy"] == s["accuracy_matched"] and res["metric"] == "accuracy"


@pytest.mark.parametrize("task,keys", [("squad", {"exact_match", "f1"}),
                                       ("squad_v2", {"exact", "f1", "HasAns_f1", "NoAns_f1"})])
def test_span_tasks_run(tiny_ckpt, data, task, keys):
    res = run_task(task, tiny_ckpt, {**FAST, "max_steps": 10}, seeds=[0], data=data(task))
    s = res["seeds"][0]
    assert keys <= set(s) and res["metric"] == "f1" and res["mean"] == s["f1"]
    # identities of the official scripts (a 0 <= F1 <= 100 bound would assert nothing):
    # an exact match scores F1 100, so EM <= F1; v2's F1 is the count-weighted mean of
    # its answerable and unanswerable halves
    em = s.get("exact_match", s.get("exact"))
    assert em <= s["f1"] + 1e-9
    if task == "squad_v2":
        n_has, n_no = s.get("HasAns_total", 0), s.get("NoAns_total", 0)
        assert n_has > 0 and n_no > 0, s
        assert s["f1"] == pytest.approx((s["HasAns_f1"] * n_has + s["NoAns_f1"] * n_no) / (n_has + n_no))


def test_init_from_minilm(data):
    hp = {**FAST, "lr": 5e-5, "max_steps": 4, "max_train_examples": 64, "max_eval_examples": 32}
    res = run_task("rte", "minilm", hp, seeds=[0], data=data("rte"))
    assert res["model"] == "minilm" and res["seeds"][0]["train_examples"] == 64
    # accuracy over the 32 evaluation rows: a multiple of 1/32, the mean of one seed
    assert res["mean"] == res["seeds"][0]["accuracy"]
    assert res["mean"] * 32 == pytest.approx(round(res["mean"] * 32), abs=1e-9)


def test_max_seq_len_is_clamped_to_model_positions(tiny_ckpt, data):
    res = run_task("cola", tiny_ckpt, {**FAST, "max_seq_len": 512, "max_steps": 2}, seeds=[0], data=data("cola"))
    assert res["metric"] == "matthews_correlation"


def test_bad_task_name():
    with pytest.raises(ValueError, match=r"'colaa'.*allowed: cola, sst2"):
        check_task("colaa")
    with pytest.raises(ValueError, match="colaa"):
        run_task("colaa", "minilm", {}, seeds=[0])
    with pytest.raises(ValueError, match="corpus"):   # a registry task, but not a fine-tuning one
        check_task("corpus")


def test_params_validation_names_bad_values():
    ok = validate_section("finetune", {"models": ["bert"], "tasks": ["cola", "squad"], "hp": {},
                                       "task_overrides": {"stsb": {"lr": 1e-5}},
                                       "model_overrides": {"minilm": {"max_steps": 5}}})
    assert isinstance(ok, FinetuneParams)
    assert ok.hp_for("stsb").lr == 1e-5 and ok.hp_for("cola").lr == ok.hp.lr
    assert ok.hp_for("cola", "minilm").max_steps == 5
    assert ok.init_for("bert").endswith("models/pretrain/bert") and ok.init_for("minilm") == "minilm"
    with pytest.raises(ValueError, match="unknown model 'gpt'"):
        ok.init_for("gpt")
    bad = [({"tasks": ["cola", "colaa"]}, "colaa"),
           ({"task_overrides": {"stsbb": {}}}, "stsbb"),
           ({"task_overrides": {"stsb": {"lrr": 1}}}, "lrr"),
           ({"hp": {"lr": -1}}, "lr"),
           ({"tasks": ["squad"], "hp": {"max_seq_len": 64, "doc_stride": 60}}, "doc_stride"),
           ({"model_overrides": {"ghost": {}}}, "ghost"),
           ({"ref_models": ["no-such-ckpt"]}, "no-such-ckpt"),
           ({"epochz": 3}, "epochz")]
    for values, needle in bad:
        with pytest.raises(ParamsError, match=needle):
            validate_section("finetune", {"hp": {}, **values})
    with pytest.raises(ParamsError, match=r"finetune.hp = .*Field required"):   # the recipe is required
        validate_section("finetune", {"tasks": ["cola"]})


def test_repo_params_valid_in_every_profile(repo_root):
    from arkbench.config import check_all

    problems = [p for p in check_all(repo_root / "params.yaml") if "finetune" in p]
    assert problems == []


def test_stage_end_to_end(tmp_path, tiny_ckpt, data, monkeypatch):
    """stages/finetune.py logic: params file -> run -> metrics/finetune/<model>-<task>.json."""
    import shutil

    from arkbench.stage import stage_main
    from arkbench.training.finetune import run

    monkeypatch.setenv("ARKBENCH_TRACKING", "off")
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_ckpt, tmp_path / "models/pretrain/tiny")
    data("rte").save_to_disk(str(tmp_path / "data/tasks/rte"))
    params = {"profile": "smoke", "seed": 0,
              "finetune": {"models": ["tiny"], "tasks": ["rte"], "seeds": [3],
                           "hp": {**FAST, "max_steps": 5},
                           "profiles": {"smoke": {"hp": {"max_steps": 6}}}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = "metrics/finetune/{model}-{task}.json"
    res = stage_main("finetune", run, argv=["--model", "tiny", "--task", "rte"], metrics_path=out)
    written = json.loads((tmp_path / "metrics/finetune/tiny-rte.json").read_text())
    assert written == json.loads(json.dumps(res))
    assert written["model"] == "tiny" and written["seeds"][0]["seed"] == 3
    assert written["seeds"][0]["train_steps"] == 6         # profile override merged
    with pytest.raises(ValueError, match="not in finetune.tasks"):
        stage_main("finetune", run, argv=["--model", "tiny", "--task", "cola"])
    with pytest.raises(ValueError, match="unknown model"):
        stage_main("finetune", run, argv=["--model", "nope", "--task", "rte"])
