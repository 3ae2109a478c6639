"""DVC push -> fresh clone -> pull through a real S3 protocol server (moto) on 127.0.0.1.

    moto's standalone S3 server (python -m moto.server, as DVC's own tests use)
    origin: repo copy, `dvc remote add -d s3 s3://<bucket>/dvc` + endpointurl (committed),
            credentials only in the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)
    origin: dvc repro download -> dvc push (objects appear in the bucket) -> git commit dvc.lock
    clone:  git clone -> dvc pull -> same bytes; `dvc repro` runs only `resolve` (uncached, 0.2 s)
            and skips download; then `dvc status` is clean

The stages run with byte-code writing on (tests/repo_copy.env_for), so the origin's
src/ has __pycache__/ when dvc.lock is written and the clone has none: the no-op repro
also checks that .dvcignore keeps byte-code out of the cache keys. Checked failing
first: without .dvcignore the clone's `dvc repro` reruns `download`.
No network beyond the loopback interface.
"""
from __future__ import annotations

import filecmp
import hashlib
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from repo_copy import DVC, copy_repo, dvc, git

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")
pytest.importorskip("dvc_s3")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not DVC.exists(), reason=f"dvc not installed at {DVC}")]

BUCKET = "arkbench-dvc-test"
TARGET = "download"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_server(monkeypatch, tmp_path):
    """moto's S3 server on 127.0.0.1:<free port>; yields its endpoint URL."""
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE",
              "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "arkbench-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "arkbench-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    port = _free_port()
    log = open(tmp_path / "moto.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        assert proc.poll() is None, (tmp_path / "moto.log").read_text()[-2000:]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            assert time.time() < deadline, "moto server did not come up"
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _outs(root: Path) -> list[Path]:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    files: list[Path] = []
    for o in lock["stages"][TARGET].get("outs") or []:
        p = root / o["path"]
        files += sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    return files


def test_push_clone_pull_through_s3(tmp_path, s3_server):
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    origin.mkdir()
    copy_repo(origin)
    (origin / "dvc.lock").unlink(missing_ok=True)
    p = yaml.safe_load((origin / "params.yaml").read_text())
    p["download"].update(tasks=["rte", "stsb", "corpus"], embedded_train_size=64, embedded_eval_size=32)
    (origin / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    git(origin, "init", "-q", "-b", "main")
    dvc(origin, "remote", "add", "-d", "s3", f"s3://{BUCKET}/dvc")
    dvc(origin, "remote", "modify", "s3", "endpointurl", s3_server)
    config = (origin / ".dvc/config").read_text()
    assert "arkbench-test" not in config, "credentials must not be written to the committed config"
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "repo copy + S3 remote")

    dvc(origin, "repro", TARGET)
    assert list((origin / "src/arkbench/data").glob("__pycache__/*.pyc")), "stages wrote no byte-code"
    dvc(origin, "push", TARGET)
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="dvc/")
            for o in page.get("Contents", [])]
    outs = _outs(origin)
    assert outs
    # DVC 3's content-addressed layout: dvc/files/md5/<first 2 hex>/<rest>; identical files share one object
    missing = [o for o in outs if f"dvc/files/md5/{_md5(o)[:2]}/{_md5(o)[2:]}" not in set(keys)]
    assert not missing, f"not in the bucket after dvc push: {missing}"
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", f"dvc repro {TARGET}")

    git(tmp_path, "clone", "-q", str(origin), str(clone))
    assert not (clone / "data").exists()
    dvc(clone, "pull", TARGET)
    for o in outs:
        c = clone / o.relative_to(origin)
        assert c.is_file() and filecmp.cmp(o, c, shallow=False), f"{c} differs after dvc pull"
    # data/resolved is the `resolve` stage's uncached output (0.2 s to re-derive; it may link to
    # the data folder outside the repo, so DVC never caches it): the only thing a pull can't bring
    status = dvc(clone, "status", TARGET)
    changed = set(re.findall(r"(?:deleted|modified|new):\s+(\S+)", status))
    assert changed <= {"data/resolved", "data/resolved/local", f"data/resolved/keys/{TARGET}.json"}, status
    repro = dvc(clone, "repro", TARGET)
    assert re.search(rf"Stage '{TARGET}' didn't change", repro), repro
    ran = re.findall(r"Running stage '([^']+)'", repro)
    assert ran in ([], ["resolve"]), f"dvc repro recomputed after dvc pull:\n{repro}"
    assert "up to date" in dvc(clone, "status", TARGET)
