#!/usr/bin/env python3
"""Copy a finished run's report into docs/results/<profile>/ with where and how it was made.

    scripts/snapshot_results.py WORKSPACE --log LOG [--profile cpu] [--note "..."]

WORKSPACE is the clone the run happened in (its reports/ and git HEAD are read); LOG is
the run's `dvc repro` / `dvc exp run` output with a `HH:MM:SS ` timestamp before every line
(`... | while read -r l; do printf '%s %s\\n' "$(date +%T)" "$l"; done`) and a last line
`RC=<status> WALL=<seconds>s`. Written (each to a temp name, then renamed):

    docs/results/<profile>/results.md, results.json   the report
    docs/results/<profile>/<paper>_table.md           each paper's own tables (its manifest's `tables`)
    docs/results/<profile>/plots/*.png                its plots
    docs/results/<profile>/README.md   commit, date, machine, wall time, per-stage and per-part times,
                                       and --findings (a Markdown file: what the run shows, written by hand)

The per-stage time is the gap between a stage's "Running stage" line and the next one (the
last stage ends at the log's last timestamped line), so it includes DVC's own bookkeeping.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

STAGE = re.compile(r"^(\d\d):(\d\d):(\d\d) Running stage '([^']+)'")
STAMP = re.compile(r"^(\d\d):(\d\d):(\d\d) ")
END = re.compile(r"RC=(-?\d+) WALL=(\d+)s")


def stage_times(lines: list[str]) -> list[tuple[str, int]]:
    """[(stage, seconds)] in run order, from a timestamped log (midnight wrap handled)."""
    starts, last = [], None
    for ln in lines:
        m = STAGE.match(ln)
        if m:
            starts.append((int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3]), m[4]))
        m = STAMP.match(ln)
        if m:
            last = int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3])
    out = []
    for i, (t, name) in enumerate(starts):
        t2 = starts[i + 1][0] if i + 1 < len(starts) else last
        out.append((name, (t2 - t) % 86400))
    return out


def part_of(stage: str) -> str:
    """The README's budget parts: a paper's stages, or the core stage's name."""
    base = stage.split("@")[0]
    for prefix in ("oversmoothing", "autobert", "zerogen", "captioning", "sparsebert"):
        if base.startswith(prefix):
            return prefix
    return base


def paper_tables() -> dict[str, tuple[str, str]]:
    """{file name in the snapshot: (paper, workspace path)} from every paper manifest's `tables`."""
    from arkbench.papers import papers

    out: dict[str, tuple[str, str]] = {}
    for p in papers().values():
        for name, src in p.tables.items():
            if name in out:
                raise ValueError(f"snapshot table name {name!r} is declared by papers {out[name][0]!r} and "
                                 f"{p.name!r} (manifest `tables`): names must differ")
            out[name] = (p.name, src)
    return out


def _write(path: Path, text: str | None = None, src: Path | None = None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if src is not None:
        shutil.copyfile(src, tmp)
    else:
        tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--note", default="", help="a line on the machine's load or anything unusual")
    ap.add_argument("--out", type=Path, default=None, help="default: docs/results/<profile> of this repository")
    ap.add_argument("--findings", type=Path, default=None,
                    help="Markdown appended to README.md under 'What this run shows' (read before anything is written)")
    a = ap.parse_args(argv)
    ws, repo = a.workspace.resolve(), Path(__file__).resolve().parents[1]
    rep = ws / "reports"
    for f in ("results.md", "results.json"):
        if not (rep / f).is_file():
            print(f"snapshot: {rep / f} not found: the run did not reach the report stage", file=sys.stderr)
            return 2
    lines = a.log.read_text().splitlines()
    end = next((m for m in map(END.search, reversed(lines)) if m), None)
    if end is None:
        print(f"snapshot: {a.log}: no final 'RC=<status> WALL=<seconds>s' line: the run has not finished",
              file=sys.stderr)
        return 2
    rc, wall = int(end[1]), int(end[2])
    tables = paper_tables()
    missing = [f"{ws / src} ({paper}'s {name})" for name, (paper, src) in tables.items()
               if not (ws / src).is_file()]
    if missing:
        print(f"snapshot: paper table not found: {', '.join(missing)}: the run did not write it", file=sys.stderr)
        return 2
    if a.findings is not None and not a.findings.is_file():
        print(f"snapshot: --findings {a.findings}: no such file", file=sys.stderr)
        return 2
    findings = a.findings.read_text().strip() if a.findings is not None else ""
    commit = subprocess.run(["git", "-C", str(ws), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    results = json.loads((rep / "results.json").read_text())
    out = a.out or repo / "docs" / "results" / a.profile
    (out / "plots").mkdir(parents=True, exist_ok=True)
    for old in (out / "plots").glob("*.png"):
        old.unlink()
    for f in ("results.md", "results.json"):
        _write(out / f, src=rep / f)
    for name, (_, src) in tables.items():
        _write(out / name, src=ws / src)
    pngs = sorted((rep / "plots").glob("*.png"))
    for p in pngs:
        _write(out / "plots" / p.name, src=p)

    times = stage_times(lines)
    parts: dict[str, int] = {}
    for name, s in times:
        parts[part_of(name)] = parts.get(part_of(name), 0) + s
    t_end = datetime.datetime.fromtimestamp(a.log.stat().st_mtime, datetime.timezone.utc)
    started = (t_end - datetime.timedelta(seconds=wall)).strftime("%Y-%m-%d %H:%M")
    finished = t_end.strftime("%H:%M")
    date = subprocess.run(["git", "-C", str(ws), "log", "-1", "--format=%cI"], capture_output=True,
                          text=True).stdout.strip()
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    counts = results.get("summary") or {}
    doc = [f"# `{a.profile}` profile results snapshot", "",
           f"The report of one complete `dvc exp run -S profile={a.profile}` on a clean clone: "
           "[results.md](results.md) (the claims table), [results.json](results.json), "
           + "".join(f"[{name}]({name}), " for name in tables)
           + "and [plots/](plots/). "
           "Regenerate with `scripts/snapshot_results.py` after a full run whenever a paper lands.", "",
           "| | |", "| --- | --- |",
           f"| commit | `{commit[:12]}` (committed {date}) |",
           f"| run | {started} to {finished} UTC, exit status {rc} |",
           f"| wall time | **{wall // 3600} h {wall % 3600 // 60:02d} min {wall % 60:02d} s** ({wall} s) |",
           f"| machine | {os.cpu_count()} vCPU ({cpu}), {mem:.0f} GiB, no GPU, {platform.platform()} |"]
    if a.note:
        doc.append(f"| note | {a.note} |")
    if counts:
        doc += ["", "Verdicts: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + "."]
    doc += ["", "## Time per part", "", "| part | stages | minutes |", "| --- | --- | --- |"]
    for part, s in parts.items():
        n = sum(1 for name, _ in times if part_of(name) == part)
        doc.append(f"| {part} | {n} | {s / 60:.1f} |")
    doc += ["", "## Time per stage", "", "(from the stage's start to the next stage's start: DVC's own "
            "bookkeeping included)", "", "| stage | seconds |", "| --- | --- |"]
    doc += [f"| `{name}` | {s} |" for name, s in times]
    if findings:
        doc += ["", "## What this run shows", "", findings]
    _write(out / "README.md", "\n".join(doc) + "\n")
    print(f"snapshot: {out} ({len(pngs)} plots, {len(times)} stages, wall {wall} s, exit {rc})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
