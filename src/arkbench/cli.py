"""`arkbench` command line.

    arkbench ui [--port 5000] [--host 127.0.0.1]   MLflow UI over ./mlflow.db
    arkbench params check [--file params.yaml]     validate every section and profile
    arkbench profile NAME                          one of params.yaml's `profiles` (edits params.yaml)
    arkbench source NAME                           download.source (edits params.yaml)
    arkbench report                                build reports/ from metrics/ and plots/

`profile` / `source` edit the one line in place, keeping comments and layout;
`dvc exp run -S profile=small` does the same for a single experiment.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

from .config import PROFILES, ParamsError, check_all, params_path, profile_names, read_params
from .utils import atomic_write_text

DEFAULT_SOURCES = ("embedded", "local", "hub")


# -- ui --------------------------------------------------------------------------------
def ui_command(host: str, port: int, backend: str = "sqlite:///mlflow.db") -> list[str]:
    exe = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow")
    base = [exe] if exe else [sys.executable, "-m", "mlflow"]
    return base + ["server", "--backend-store-uri", backend, "--host", host, "--port", str(port),
                   "--workers", "1", "--serve-artifacts", "--artifacts-destination", "./mlartifacts"]


def runs_url(host: str, port: int, backend: str = "sqlite:///mlflow.db", experiment: str = "arkbench/core") -> str:
    """The UI address that opens on `experiment`'s runs table.

    MLflow 3.17's UI picks "GenAI" or "Model training" from a global toggle (the URL's
    ``workflowType`` parameter, else the browser's stored choice, default GenAI), not from
    the experiment's mlflow.experimentKind tag; ``workflowType=machine_learning`` selects
    the runs table. The experiment id is read from a sqlite store without importing mlflow.
    """
    base = f"http://{host}:{port}/#/experiments"
    exp_id = None
    if backend.startswith("sqlite:///"):
        import sqlite3

        path = Path(backend[len("sqlite:///"):])
        if path.is_file():
            try:
                con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                try:
                    row = con.execute("SELECT experiment_id FROM experiments WHERE name = ? AND "
                                      "lifecycle_stage = 'active'", (experiment,)).fetchone()
                finally:
                    con.close()
                exp_id = row[0] if row else None
            except sqlite3.Error:
                exp_id = None
    return f"{base}/{exp_id}?workflowType=machine_learning" if exp_id is not None else \
        f"{base}?workflowType=machine_learning"


def cmd_ui(args: argparse.Namespace) -> int:
    cmd = ui_command(args.host, args.port, args.backend_store_uri)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    print(f"arkbench ui: {runs_url(args.host, args.port, args.backend_store_uri)}\n"
          f"  the runs table (\"Model training\" view; the UI remembers the toggle at its top left); "
          f"store {args.backend_store_uri}; Ctrl-C stops", flush=True)
    if args.print_command:
        print(" ".join(cmd))
        return 0
    os.execve(cmd[0], cmd, env) if os.path.isabs(cmd[0]) else os.execvpe(cmd[0], cmd, env)
    return 0  # pragma: no cover


# -- params ------------------------------------------------------------------------------
def cmd_params_check(args: argparse.Namespace) -> int:
    try:
        problems = check_all(args.file)
    except ParamsError as e:
        problems = [str(e)]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"{len(problems)} problem(s) in {params_path(args.file)}", file=sys.stderr)
        return 2
    print(f"{params_path(args.file)}: ok (every section, profiles "
          f"{', '.join(profile_names(read_params(args.file)))})")
    return 0


_VALUE = r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s#]+)"


def set_top_level(text: str, key: str, value: str) -> str:
    """Replace `key: old  # comment` at column 0 (comment kept); append the key if absent."""
    pat = re.compile(rf"^(?P<head>{re.escape(key)}:[ \t]*){_VALUE}?(?P<tail>[ \t]*(#.*)?)$", re.M)
    m = pat.search(text)
    if not m:
        return text.rstrip("\n") + f"\n{key}: {value}\n"
    head = m.group("head") if m.group("head").endswith(" ") else m.group("head") + " "
    return text[:m.start()] + head + value + (m.group("tail") or "") + text[m.end():]


def set_nested(text: str, section_name: str, key: str, value: str) -> str:
    """Replace `  key: old` inside the block `section_name:` (comments kept); insert if absent."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines)
                  if re.match(rf"^{re.escape(section_name)}:[ \t]*(#.*)?$", ln.rstrip("\n"))), None)
    if start is None:
        if re.search(rf"^{re.escape(section_name)}:", text, re.M):
            raise ValueError(f"'{section_name}:' is written inline; make it a block to edit it")
        return text.rstrip("\n") + f"\n{section_name}:\n  {key}: {value}\n"
    pat = re.compile(rf"^(?P<head>[ \t]+{re.escape(key)}:[ \t]*){_VALUE}?(?P<tail>[ \t]*(#.*)?)$")
    indent = "  "
    for i in range(start + 1, len(lines)):
        raw = lines[i].rstrip("\n")
        if raw.strip() and not raw[0].isspace() and not raw.lstrip().startswith("#"):
            break  # next top-level key: end of block
        m = pat.match(raw)
        if m:
            head = m.group("head") if m.group("head").endswith(" ") else m.group("head") + " "
            nl = lines[i][len(raw):]
            lines[i] = head + value + (m.group("tail") or "") + nl
            return "".join(lines)
        if raw.strip() and not raw.lstrip().startswith("#"):
            indent = raw[: len(raw) - len(raw.lstrip())]
    lines.insert(start + 1, f"{indent}{key}: {value}\n")
    return "".join(lines)


def allowed_sources() -> tuple[str, ...]:
    """The `download.source` values the download schema allows (Literal), else the defaults."""
    import typing

    from .config import registered_sections

    schema = registered_sections().get("download")
    field = getattr(schema, "model_fields", {}).get("source") if schema else None
    if field is not None and typing.get_origin(field.annotation) is typing.Literal:
        return tuple(str(a) for a in typing.get_args(field.annotation))
    return DEFAULT_SOURCES


def _edit(file: str | None, edit, what: str) -> int:
    p = params_path(file)
    if not p.exists():
        print(f"{p}: not found (run from the repository root)", file=sys.stderr)
        return 2
    new = edit(p.read_text())
    atomic_write_text(p, new)
    print(f"{p}: {what}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    try:
        names = profile_names(read_params(args.file), params_path(args.file))
    except ParamsError:
        names = PROFILES
    if args.name not in names:
        print(f"unknown profile {args.name!r}; choose one of: {', '.join(names)}", file=sys.stderr)
        return 2
    return _edit(args.file, lambda t: set_top_level(t, "profile", args.name), f"profile = {args.name}")


def cmd_source(args: argparse.Namespace) -> int:
    allowed = allowed_sources()
    if args.name not in allowed:
        print(f"unknown data source {args.name!r}; choose one of: {', '.join(allowed)}", file=sys.stderr)
        return 2
    try:
        return _edit(args.file, lambda t: set_nested(t, "download", "source", args.name),
                     f"download.source = {args.name}")
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 2


# -- report ------------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    from .config import stage_params
    from .report.build import build_report

    try:
        params = stage_params("report", args.file)
    except ParamsError as e:
        print(f"bad params:\n{e}", file=sys.stderr)
        return 2
    counts = build_report(params)
    print(f"{params.out_dir}/index.html, results.md, results.json: "
          + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="arkbench", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)

    ui = sub.add_parser("ui", help="MLflow UI over the local tracking store")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--backend-store-uri", default="sqlite:///mlflow.db")
    ui.add_argument("--print-command", action="store_true", help="print the server command and exit")
    ui.set_defaults(func=cmd_ui)

    params = sub.add_parser("params", help="params.yaml tools")
    psub = params.add_subparsers(dest="params_command", required=True)
    check = psub.add_parser("check", help="validate every section and profile")
    check.add_argument("--file", default=None)
    check.set_defaults(func=cmd_params_check)

    prof = sub.add_parser("profile", help="switch profile (one of params.yaml's `profiles`)")
    prof.add_argument("name")
    prof.add_argument("--file", default=None)
    prof.set_defaults(func=cmd_profile)

    src = sub.add_parser("source", help="switch download.source")
    src.add_argument("name")
    src.add_argument("--file", default=None)
    src.set_defaults(func=cmd_source)

    rep = sub.add_parser("report", help="build reports/ now")
    rep.add_argument("--file", default=None)
    rep.set_defaults(func=cmd_report)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
