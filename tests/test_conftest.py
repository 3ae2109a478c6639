"""The test harness itself: in CI a missing ../shared/data fails the run instead of skipping."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROBE = "def test_needs_real_data(shared_data):\n    assert shared_data.is_dir()\n"


def _pytest(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    """pytest in a subprocess on one test that asks for `shared_data`, with this repo's
    conftest.py (copied verbatim: the probe imports nothing heavy, so it runs in ~1 s)."""
    (tmp_path / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS")}
    env["ARKBENCH_SHARED_DATA"] = str(tmp_path / "no_such_folder")
    if ci is not None:
        env["CI"] = ci
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist",
           "--rootdir", str(tmp_path), "test_probe.py"]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("ci, rc, needle", [
    ("true", 1, "CI=true and real data not found at"),
    (None, 0, "1 skipped"),
])
def test_missing_shared_data_fails_in_ci_and_skips_elsewhere(tmp_path, ci, rc, needle):
    """Checked against a switched-off feature: with the CI branch removed from the
    fixture the CI=true case exits 0 (skipped) and this test fails."""
    res = _pytest(tmp_path, ci)
    out = res.stdout + res.stderr
    assert res.returncode == rc, out[-3000:]
    assert needle in out, out[-3000:]
    assert str(tmp_path / "no_such_folder") in out
