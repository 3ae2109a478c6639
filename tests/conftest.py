"""Shared test fixtures. Tests never touch the network (see the env vars below)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

for _k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_k] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# MLflow system metrics (a sampling thread per run) are off in tests that count metrics;
# tests/test_tracking_server.py turns them on and checks them
os.environ.setdefault("ARKBENCH_SYSTEM_METRICS", "off")
# warm servers that tests' `dvc repro` runs start (arkbench.warm) exit 20 s after their last stage,
# not 120 s: a test session leaves no server behind for long
os.environ.setdefault("ARKBENCH_WARM_IDLE", "20")

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Real data sets in their original layouts: $ARKBENCH_SHARED_DATA or ../shared/data."""
    return Path(os.environ.get("ARKBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))


def in_ci() -> bool:
    """CI sets CI=true (.ci/run does, as GitHub Actions and GitLab do)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder. Missing: a skip on a developer's machine, a failure in CI
    (CI=true), where ../shared/data is part of the contract and a silent skip would keep
    the real-data tests from ever running. Checked with a subprocess in tests/test_conftest.py."""
    d = shared_data_dir()
    if not d.is_dir():
        msg = f"real data not found at {d} (set ARKBENCH_SHARED_DATA); CI has it at ../shared/data"
        if in_ci():
            pytest.fail(f"CI=true and {msg}", pytrace=False)
        pytest.skip(msg)
    return d


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
