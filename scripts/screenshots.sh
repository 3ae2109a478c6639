#!/usr/bin/env bash
# Regenerate the README screenshots from a workspace where `dvc repro` has run with tracking on:
#   docs/img/report.png        reports/index.html (the report page)
#   docs/img/mlflow-runs.png   `arkbench ui` on the arkbench/core experiment (the runs table)
#
# Usage: scripts/screenshots.sh [WORKSPACE]   (default: this repository; WORKSPACE needs
#        reports/index.html and mlflow.db). Needs Chromium (Debian: apt-get install chromium).
# Besides the screenshots it checks, in the page Chromium rendered, that the address
# `arkbench ui` prints opens on the runs table (not MLflow 3's GenAI traces overview with
# its "Detect issues" pop-up), and fails if not.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
ws="$(cd "${1:-$repo}" && pwd)"
out="$repo/docs/img"
chrome="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}"
[ -n "$chrome" ] || { echo "screenshots: no Chromium found (apt-get install chromium, or set CHROMIUM)" >&2; exit 2; }
for f in reports/index.html mlflow.db; do
  [ -f "$ws/$f" ] || { echo "screenshots: $ws/$f not found: run \`dvc repro\` (tracking on) first" >&2; exit 2; }
done
mkdir -p "$out"
py="${PYTHON:-python3}"
shot() {  # shot URL PNG [WIDTHxHEIGHT]: headless Chromium, 20 s of virtual time for the page's scripts
  timeout 300 "$chrome" --headless --no-sandbox --disable-gpu --hide-scrollbars --mute-audio --no-first-run \
    --window-size="${3:-1400,900}" --virtual-time-budget=20000 --screenshot="$2" "$1" >/dev/null 2>&1
}
dom() {
  timeout 300 "$chrome" --headless --no-sandbox --disable-gpu --virtual-time-budget=20000 --dump-dom "$1" 2>/dev/null
}

# 1. the report page (self-contained file)
shot "file://$ws/reports/index.html" "$out/report.png" 1400,1000

# 2. the MLflow UI on the runs of arkbench/core
port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
(cd "$ws" && exec "$py" -m arkbench.cli ui --port "$port") >"$out/.ui.log" 2>&1 &
ui=$!
trap 'kill -- -$ui 2>/dev/null || kill $ui 2>/dev/null || true; rm -f "$out/.ui.log"' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 120); do
  if "$py" -c "import urllib.request,sys; urllib.request.urlopen('$base/health', timeout=2)" 2>/dev/null; then break; fi
  sleep 0.5
done
exp="$("$py" - "$base" <<'PY'
import json, sys, urllib.parse, urllib.request
base = sys.argv[1]
q = urllib.parse.urlencode({"experiment_name": "arkbench/core"})
with urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/get-by-name?{q}", timeout=10) as r:
    e = json.loads(r.read())["experiment"]
tags = {t["key"]: t["value"] for t in e.get("tags", [])}
if tags.get("mlflow.experimentKind") != "custom_model_development":
    sys.exit(f"arkbench/core has mlflow.experimentKind={tags.get('mlflow.experimentKind')!r}")
print(e["experiment_id"])
PY
)"
url="$(cd "$ws" && "$py" -c "from arkbench.cli import runs_url; print(runs_url('127.0.0.1', $port))")"
case "$url" in *"/experiments/$exp?"*) ;; *) echo "screenshots: arkbench ui points at $url, not experiment $exp" >&2; exit 1;; esac
page="$(dom "$url")"
if ! grep -q "Run Name" <<<"$page" || grep -qi "Detect issues" <<<"$page"; then
  echo "screenshots: $url did not open on the runs table" >&2; exit 1
fi
shot "$url" "$out/mlflow-runs.png" 1400,800

# keep the PNGs small (palette of 128 colours; the pages are flat UI colours)
"$py" - "$out/report.png" "$out/mlflow-runs.png" <<'PY'
import sys
from PIL import Image
for p in sys.argv[1:]:
    im = Image.open(p).convert("RGB")
    im.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(p, optimize=True)
    print(f"{p}: {im.size[0]}x{im.size[1]}")
PY
