"""Params: typed, validated before any work, errors name the file, key and value."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from arkbench.config import ParamsError, check_all, deep_merge, stage_params

BASE = """\
profile: smoke
profiles: [smoke, small, paper]
seed: 0
download:
  source: embedded
  tasks: [cola]
  profiles:
    small: {source: local}
"""


def _write(tmp_path, text):
    p = tmp_path / "params.yaml"
    p.write_text(text)
    return p


def test_profile_overrides_are_merged(tmp_path):
    p = _write(tmp_path, BASE)
    assert stage_params("download", p).source == "embedded"
    p.write_text(BASE.replace("profile: smoke", "profile: small"))
    assert stage_params("download", p).source == "local"


@pytest.mark.parametrize("edit, needle", [
    (("source: embedded", "source: web"), "download.source = 'web'"),
    (("tasks: [cola]", "tasks: [cola]\n  shuffle_everything: true"), "unknown key 'download.shuffle_everything'"),
    (("tasks: [cola]", "tasks: [colaa]"), "colaa"),
    (("seed: 0", "seed: zero"), "seed = 'zero'"),
    (("profile: smoke", "profile: huge"), "profile = 'huge'"),
])
def test_bad_params_name_the_key_and_value(tmp_path, edit, needle):
    p = _write(tmp_path, BASE.replace(*edit))
    with pytest.raises(ParamsError) as e:
        stage_params("download", p)
    assert needle in str(e.value) and str(p) in str(e.value)


def test_bad_override_names_the_profile(tmp_path):
    p = _write(tmp_path, BASE.replace("profile: smoke", "profile: small").replace(
        "small: {source: local}", "small: {sauce: local}"))
    with pytest.raises(ParamsError, match=r"(?s)unknown key .download.sauce. .value .local.*profile .small.: download merged with download.profiles.small"):
        stage_params("download", p)


def test_check_all_reports_every_profile_and_no_boilerplate(tmp_path):
    """Every declared profile is validated, overrides only where a profile changes something
    (no `{}` per profile and section), and an undeclared profile name is an error."""
    p = _write(tmp_path, BASE.replace("small: {source: local}", "small: {source: local}\n    paper: {source: ftp}"))
    problems = "\n".join(check_all(p))
    assert "download.source = 'ftp'" in problems and "download.profiles.paper" in problems
    assert check_all(_write(tmp_path, BASE)) == []
    p = _write(tmp_path, BASE.replace("small: {source: local}", "huge: {source: local}"))
    assert "download.profiles.huge: unknown profile; declared: smoke, small, paper" in "\n".join(check_all(p))
    p = _write(tmp_path, BASE.replace("profiles: [smoke, small, paper]", "profiles: [smoke, cpu]")
               .replace("small: {source: local}", "cpu: {source: local}").replace("profile: smoke", "profile: cpu"))
    assert check_all(p) == [] and stage_params("download", p).source == "local"   # any number of profiles


def test_old_layout_is_rejected_with_the_new_one_named(tmp_path):
    p = _write(tmp_path, "profile: smoke\nseed: 0\ndownload: {source: embedded}\n"
                         "profiles:\n  small: {download: {source: local}}\n")
    with pytest.raises(ParamsError, match=r"overrides now live beside their section \(download: \{profiles: \{small"):
        stage_params("download", p)


def test_repository_params_are_valid(repo_root):
    assert check_all(repo_root / "params.yaml") == []


def test_deep_merge_does_not_mutate():
    a = {"x": {"y": 1, "z": 2}}
    assert deep_merge(a, {"x": {"y": 3}}) == {"x": {"y": 3, "z": 2}} and a["x"]["y"] == 1


def test_stage_fails_before_work(tmp_path, repo_root):
    """A stage with a bad param exits 2 with the key named and writes nothing."""
    p = _write(tmp_path, BASE.replace("source: embedded", "source: web"))
    shutil.copytree(repo_root / "stages", tmp_path / "stages")
    r = subprocess.run([sys.executable, "stages/download.py", "--params-file", str(p)], cwd=tmp_path,
                       capture_output=True, text=True, env={"ARKBENCH_TRACKING": "off", "PATH": "/usr/bin:/bin"},
                       timeout=120)
    assert r.returncode == 2, r.stderr
    assert "download.source = 'web'" in r.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()


def test_profiles_may_not_override_matrix_lists(tmp_path, repo_root):
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    raw["finetune"]["profiles"]["small"]["tasks"] = ["cola"]
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(raw))
    problems = "\n".join(check_all(p))
    assert "finetune.profiles.small.tasks overrides a list that dvc.yaml expands" in problems
