"""`arkbench` CLI: params check, profile/source switching (comments kept), ui command line."""
from __future__ import annotations

from pathlib import Path

import pytest

from arkbench.cli import main, set_nested, set_top_level, ui_command

PARAMS = """\
# top comment
profile: smoke   # smoke | small | paper
seed: 0

download:
  # owned by download.py
  source: embedded   # embedded | local | hub
  other: 1
  profiles:
    small:
      source: local

report: {}
profiles: [smoke, small, paper]
"""


@pytest.fixture
def params(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "params.yaml"
    p.write_text(PARAMS)
    return p


def test_profile_switch_keeps_comments(params):
    assert main(["profile", "small"]) == 0
    text = params.read_text()
    assert "profile: small   # smoke | small | paper\n" in text
    assert text.replace("profile: small", "profile: smoke") == PARAMS
    assert main(["profile", "huge"]) == 2
    assert "profile: small" in params.read_text()


def test_source_switch_edits_only_download_block(params):
    assert main(["source", "local"]) == 0
    text = params.read_text()
    assert "  source: local   # embedded | local | hub\n" in text
    assert text.replace("  source: local   #", "  source: embedded   #") == PARAMS
    assert main(["source", "ftp"]) == 2


def test_text_edits_insert_when_missing():
    assert set_top_level("seed: 0\n", "profile", "paper") == "seed: 0\nprofile: paper\n"
    assert set_nested("a: 1\n", "download", "source", "hub") == "a: 1\ndownload:\n  source: hub\n"
    assert set_nested("download:\n  x: 1\nb: 2\n", "download", "source", "hub") == \
        "download:\n  source: hub\n  x: 1\nb: 2\n"
    with pytest.raises(ValueError):
        set_nested("download: {source: x}\n", "download", "source", "hub")


def test_params_check(params, capsys):
    params.write_text("profile: smoke\nseed: 0\nreport:\n  max_plots: 5\n")
    assert main(["params", "check"]) == 0
    params.write_text("profile: tiny\nseed: 0\nreport:\n  bogus: 1\nnot_a_section: {}\n")
    assert main(["params", "check"]) == 2
    err = capsys.readouterr().err
    assert "bogus" in err and "not_a_section" in err and "profile" in err


def test_ui_command_line():
    cmd = ui_command("127.0.0.1", 5123)
    assert cmd[cmd.index("--port") + 1] == "5123" and cmd[cmd.index("--workers") + 1] == "1"
    assert cmd[cmd.index("--backend-store-uri") + 1] == "sqlite:///mlflow.db"
    assert "server" in cmd


def test_report_command(params, capsys):
    Path("params.yaml").write_text("profile: smoke\nseed: 0\ndownload:\n  source: embedded\nreport: {}\n")
    assert main(["report"]) == 0
    assert Path("reports/index.html").is_file() and Path("reports/results.json").is_file()
