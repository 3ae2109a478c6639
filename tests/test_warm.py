"""arkbench.warm: a stage run from a fork of a warm server behaves as the same script run cold.

Each test runs `python -m arkbench.warm SCRIPT` in a folder of its own: the first call
finds no server, runs the script cold and starts one in the background; once the
server's socket exists, the next call is served warm. Checked against a switched-off
feature: with ARKBENCH_WARM=off every run is cold and `test_second_run_is_warm...`
fails on its first assertion (mlflow is not already imported).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from arkbench import warm

REPO = Path(__file__).resolve().parents[1]

PROBE = textwrap.dedent('''
    """Prints what a stage would see; exits with the status given as its first argument."""
    import json, os, sys
    warm_already = "mlflow" in sys.modules          # the server preloads mlflow; a cold run has not
    mode = sys.argv[1]
    if mode == "sleep":
        open(sys.argv[2], "w").write(str(os.getpid()))
        import time
        time.sleep(120)
    if mode == "raise":
        raise ValueError("probe failed on purpose")
    if mode == "kill":
        os.kill(os.getpid(), 15)
    print(json.dumps({"warm": warm_already, "argv": sys.argv, "cwd": os.getcwd(),
                      "probe_env": os.environ.get("ARKBENCH_PROBE"), "path0": sys.path[0],
                      "omp": os.environ.get("OMP_WAIT_POLICY"),
                      "main": __name__, "file": __file__}))
    print("to stderr", file=sys.stderr)
    sys.exit(int(mode))
''')


def _env(**over: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ARKBENCH_WARM", "PYTEST_XDIST")) and k != "OMP_WAIT_POLICY"}
    env.update(PYTHONPATH=str(REPO / "src"), ARKBENCH_TRACKING="off", ARKBENCH_WARM_IDLE="30",
               ARKBENCH_PROBE="yes")
    env.update(over)
    return env


@pytest.fixture
def site(tmp_path) -> Path:
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "probe.py").write_text(PROBE)
    return tmp_path


def _call(site: Path, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "arkbench.warm", "stages/probe.py", *args], cwd=site,
                          env=env or _env(), capture_output=True, text=True, timeout=timeout)


def _sock(site: Path, env: dict) -> Path:
    """The socket path the client in `site` computes (same function, same inputs)."""
    code = "import os; from arkbench import warm; print(warm.server_socket(os.getcwd(), dict(os.environ)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=site, env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    return Path(out)


def _wait_for_server(site: Path, env: dict) -> Path:
    sock = _sock(site, env)
    deadline = time.monotonic() + 180   # the server imports torch, transformers, mlflow: a hang guard
    while not sock.exists():
        assert time.monotonic() < deadline, f"no warm server at {sock}"
        time.sleep(0.2)
    return sock


def _stop_server(sock: Path) -> None:
    """Tests leave no server behind: removing the socket makes the next client start cold; kill the holder."""
    subprocess.run(["pkill", "-f", f"arkbench.warm --serve {sock}"], check=False)


def test_second_run_is_warm_and_indistinguishable_from_cold(site):
    env = _env()
    cold = _call(site, "3", env=env)
    sock = _wait_for_server(site, env)
    try:
        hot = _call(site, "3", env=env)
    finally:
        _stop_server(sock)
    c, h = json.loads(cold.stdout), json.loads(hot.stdout)
    assert c.pop("warm") is False and h.pop("warm") is True
    assert c == h
    assert h["argv"] == ["stages/probe.py", "3"] and h["main"] == "__main__" and h["probe_env"] == "yes"
    assert h["omp"] == "PASSIVE"   # set before torch loads, on both paths (arkbench.stage.ENV_DEFAULTS)
    assert Path(h["cwd"]) == site and Path(h["path0"]) == site / "stages"
    assert cold.returncode == hot.returncode == 3
    assert cold.stderr == hot.stderr == "to stderr\n"


def test_exceptions_signals_and_a_killed_client(site, tmp_path):
    env = _env()
    _call(site, "0", env=env)
    sock = _wait_for_server(site, env)
    try:
        # an uncaught exception: status 1 and the traceback on the client's stderr
        p = _call(site, "raise", env=env)
        assert p.returncode == 1 and "ValueError: probe failed on purpose" in p.stderr and "Traceback" in p.stderr
        # a stage killed by a signal: the client dies of the same signal, as `python SCRIPT` would
        assert _call(site, "kill", env=env).returncode == -signal.SIGTERM
        # SIGINT to the client reaches the stage (KeyboardInterrupt, status 130)
        pidfile = tmp_path / "pid"
        client = subprocess.Popen([sys.executable, "-m", "arkbench.warm", "stages/probe.py", "sleep", str(pidfile)],
                                  cwd=site, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        pid = _wait_pid(pidfile)
        assert pid != client.pid   # it runs in the server's fork, not in the client
        client.send_signal(signal.SIGINT)
        out, err = client.communicate(timeout=60)
        assert client.returncode == 130 and "KeyboardInterrupt" in err
        # SIGKILL to the client (nothing to forward): the server terminates the orphaned stage
        pidfile.unlink()
        client = subprocess.Popen([sys.executable, "-m", "arkbench.warm", "stages/probe.py", "sleep", str(pidfile)],
                                  cwd=site, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pid = _wait_pid(pidfile)
        client.kill()
        client.wait()
        deadline = time.monotonic() + 30
        while _alive(pid):
            assert time.monotonic() < deadline, f"stage {pid} outlived its killed client"
            time.sleep(0.1)
    finally:
        _stop_server(sock)


def _wait_pid(pidfile: Path) -> int:
    deadline = time.monotonic() + 120
    while not (pidfile.exists() and pidfile.read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return int(pidfile.read_text())


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_the_key_follows_code_and_environment(tmp_path):
    """Edited code, or another environment, is another server: a server never runs stale code."""
    root = tmp_path / "pkg"
    root.mkdir()
    mod = root / "m.py"
    mod.write_text("x = 1\n")
    env = {"A": "1", "PWD": "/x", "DVC_STAGE": "s1"}
    k0 = warm.fingerprint(str(tmp_path), env, code_roots=[root])
    # per-invocation variables do not count
    assert warm.fingerprint(str(tmp_path), {**env, "PWD": "/y", "DVC_STAGE": "s2"}, code_roots=[root]) == k0
    assert warm.fingerprint(str(tmp_path), {**env, "A": "2"}, code_roots=[root]) != k0
    st = mod.stat()
    mod.write_text("x = 22\n")
    os.utime(mod, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert warm.fingerprint(str(tmp_path), env, code_roots=[root]) != k0
    (root / "new.py").write_text("")
    k1 = warm.fingerprint(str(tmp_path), env, code_roots=[root])
    (root / "new.py").unlink()
    assert warm.fingerprint(str(tmp_path), env, code_roots=[root]) != k1
    assert warm.fingerprint(str(tmp_path / "other"), env, code_roots=[root]) != warm.fingerprint(
        str(tmp_path), env, code_roots=[root])


def test_sockets_live_in_a_private_folder(tmp_path, monkeypatch):
    """Another user's (or a world-writable) folder is refused: the stage then runs cold."""
    monkeypatch.setattr(warm.tempfile, "gettempdir", lambda: str(tmp_path))
    d = Path(warm.socket_dir())
    assert d.stat().st_mode & 0o777 == 0o700 and warm.socket_path("k") == str(d / "k.sock")
    d.chmod(0o777)
    assert warm.socket_dir() is None and warm.socket_path("k") is None


def test_off_switch_and_torchrun_run_cold(site):
    assert not warm.enabled({"ARKBENCH_WARM": "off"})
    assert not warm.enabled({"ARKBENCH_NPROC_PER_NODE": "2"})
    assert not warm.enabled({"LOCAL_RANK": "0"})
    assert warm.enabled({})
    env = _env(ARKBENCH_WARM="off")
    assert json.loads(_call(site, "0", env=env).stdout)["warm"] is False
    time.sleep(1)
    assert not _sock(site, env).exists()   # and no server was started


def test_early_env_defaults_agree_with_the_stages():
    from arkbench.stage import ENV_DEFAULTS

    assert warm.EARLY_ENV_DEFAULTS and all(ENV_DEFAULTS[k] == v for k, v in warm.EARLY_ENV_DEFAULTS.items())


def test_preload_reads_the_stage_scripts_imports(tmp_path):
    (tmp_path / "a.py").write_text("import json\nfrom arkbench.stage import stage_main\nfrom . import x\n"
                                   "def f():\n    import never_at_top\n")
    names = warm.preload_modules(tmp_path)
    assert names[:2] == ["json", "arkbench.stage"] and "never_at_top" not in names and "mlflow" in names


def test_a_real_stage_gives_the_same_bytes_warm_and_cold(tmp_path):
    """oversmoothing_theory (smoke) cold, then warm: identical metrics and plots."""
    site = tmp_path / "repo"
    site.mkdir()
    for name in ("params.yaml", "stages", "src"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, site / name)
    env = _env(PYTHONPATH=str(site / "src"), ARKBENCH_LOG="DEBUG",   # the client says "runs warm"
               ARKBENCH_TRACKING="on", MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    subprocess.run([sys.executable, "stages/resolve.py"], cwd=site, env=env, check=True, capture_output=True)
    cmd = [sys.executable, "-m", "arkbench.warm", "stages/oversmoothing_theory.py"]
    subprocess.run(cmd, cwd=site, env=env, check=True, capture_output=True, timeout=900)
    first = _snapshot(site)
    sock = _wait_for_server(site, env)
    try:
        shutil.rmtree(site / "metrics")
        shutil.rmtree(site / "plots")
        p = subprocess.run(cmd, cwd=site, env=env, capture_output=True, text=True, timeout=900)
    finally:
        _stop_server(sock)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "runs warm" in p.stderr
    assert _snapshot(site) == first and len(first) >= 2
    # both runs are in MLflow, the warm one written by a forked tracking worker, with the same metrics
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])
            if r.data.tags.get("mlflow.runName") == "oversmoothing_theory"]
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    m0, m1 = (r.data.metrics for r in runs)
    assert m0 == m1 and len(m0) >= 3


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for d in ("metrics", "plots") for p in sorted((root / d).rglob("*")) if p.is_file()}
